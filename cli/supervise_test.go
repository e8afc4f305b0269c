package cli

import (
	"bytes"
	"os"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary act as the supervised child: with $HYPERNOISE_SUPERVISE_TEST set
// it fails in the way named and never runs the tests.
func TestMain(m *testing.M) {
	switch os.Getenv("HYPERNOISE_SUPERVISE_TEST") {
	case "":
		os.Exit(m.Run())
	case "goroutine-panic":
		os.Stderr.WriteString("progress 10%\r")
		go func() { panic("boom on a worker goroutine") }()
		time.Sleep(5 * time.Second)
	case "sigkill":
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(5 * time.Second)
	case "sigint":
		_ = syscall.Kill(os.Getpid(), syscall.SIGINT)
		time.Sleep(5 * time.Second)
	case "exit3":
		os.Stdout.WriteString("out\n")
		os.Stderr.WriteString("one clear line\n")
		os.Exit(3)
	}
	os.Exit(0)
}

// TestSupervise is issue 12 case 4's "never a stack trace": failures Go code cannot recover (a
// panic on another goroutine, an out-of-memory fatal error, a kill by the system) end in one line.
func TestSupervise(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("supervision is Linux-only")
	}
	for _, c := range []struct {
		mode string
		code int
		want string
	}{
		{"goroutine-panic", ExitFailure, "the command failed: panic: boom on a worker goroutine"},
		// A kill -9 that is not the out-of-memory killer's is not blamed on memory.
		{"sigkill", ExitFailure, "killed (SIGKILL) by another process"},
		{"sigint", ExitInterrupted, "interrupted"},
		{"exit3", 3, "one clear line"},
	} {
		t.Setenv("HYPERNOISE_SUPERVISE_TEST", c.mode)
		var stderr bytes.Buffer
		code := Supervise("hypernoise", nil, &stderr, func() int { t.Fatal("ran in-process"); return 0 })
		msg := stderr.String()
		if code != c.code || !strings.Contains(msg, c.want) || stackTrace.MatchString(msg) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d, a message with %q and no stack trace", c.mode, code, msg, c.code, c.want)
		}
	}
}

var stackTrace = regexp.MustCompile(`goroutine \d+ \[|\.go:\d+`)

// TestFatalFilter: output before the failure passes through, split writes included.
func TestFatalFilter(t *testing.T) {
	var out bytes.Buffer
	f := &fatalFilter{w: &out}
	for _, s := range []string{"step 1\rstep 2\n", "ok\nfatal error: runtime: out of ", "memory\n\ngoroutine 1 [running]:\nmain.main()\n"} {
		if _, err := f.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if out.String() != "step 1\rstep 2\nok\n" || f.cause != "fatal error: runtime: out of memory" {
		t.Errorf("passed %q, cause %q", out.String(), f.cause)
	}
}
