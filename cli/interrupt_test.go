package cli

import (
	"bytes"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInterruptSaysWhatWasKept: a SIGINT while a command runs prints its OnInterrupt message and
// exits 130; after the command returns, a signal is no longer caught by it.
func TestInterruptSaysWhatWasKept(t *testing.T) {
	env := &Env{}
	var stderr bytes.Buffer
	codes := make(chan int, 1)
	stop := env.catchInterrupts("hypernoise train", &stderr, func(c int) { codes <- c })
	env.OnInterrupt(func() string { return "the checkpoint of step 40 in run/ is kept; continue with --resume" })
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-codes:
		if c != ExitInterrupted {
			t.Errorf("exit %d, want %d", c, ExitInterrupted)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the interrupt was not caught")
	}
	stop()
	want := "hypernoise train: interrupted; the checkpoint of step 40 in run/ is kept; continue with --resume\n"
	if stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
}

// TestKillMessage: memory is blamed only when the system recorded an out-of-memory kill (or, with
// no counter to read, when the peak came near the machine's memory).
func TestKillMessage(t *testing.T) {
	if m := killMessage("hn", 3, 4, true, 1<<30); !strings.Contains(m, "out-of-memory killer") {
		t.Errorf("OOM kill: %s", m)
	}
	if m := killMessage("hn", 3, 3, true, 1<<30); strings.Contains(m, "memory killer") || !strings.Contains(m, "no out-of-memory kill") {
		t.Errorf("user kill: %s", m)
	}
	if m := killMessage("hn", 0, 0, false, 1<<20); strings.Contains(m, "lack of memory") {
		t.Errorf("small peak, no counters: %s", m)
	}
}

// TestLongMessageCut: a message quoting a huge argument is cut, saying how much was left out.
func TestLongMessageCut(t *testing.T) {
	var out, errb bytes.Buffer
	big := strings.Repeat("x", 100_000)
	code := Main("hn", "about", []Command{{Name: "c", Run: func(*Env, []string) error { return Usagef("unknown prompt %q", big) }}},
		[]string{"c"}, &out, &errb)
	if code != ExitUsage || errb.Len() > MaxMessage+200 || !strings.Contains(errb.String(), "left out") {
		t.Errorf("exit %d, %d bytes of message", code, errb.Len())
	}
}
