package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"
)

// EnvSupervised is set in the environment of the child process that Supervise starts.
const EnvSupervised = "HYPERNOISE_SUPERVISED"

// Supervise runs the command line in a child process (the same executable, same arguments and
// environment) and watches it, so that failures no Go code can recover from still end in one
// clear line instead of a stack trace: a fatal runtime error (such as running out of memory) or a
// panic on another goroutine is reported by its first line, and a SIGKILL is explained (the
// kernel's out-of-memory killer only when the system recorded one, see killMessage); these exit
// with code 1. A child that dies of SIGINT or SIGTERM exits 130 or 143. Standard input and
// output pass through; standard error passes through until such a failure starts. Interrupts are
// forwarded to the child, which dies with the parent (Linux). It falls back to run() in-process
// where it cannot supervise (not Linux, no executable path), inside the child, or with
// $HYPERNOISE_DEBUG set (to see the stack traces).
func Supervise(name string, args []string, stderr io.Writer, run func() int) int {
	if os.Getenv(EnvSupervised) != "" || os.Getenv("HYPERNOISE_DEBUG") != "" || runtime.GOOS != "linux" {
		return run()
	}
	exe, err := os.Executable()
	if err != nil {
		return run()
	}
	runtime.LockOSThread() // the child's parent-death signal is tied to this thread
	defer runtime.UnlockOSThread()
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), EnvSupervised+"=1")
	cmd.Stdin, cmd.Stdout = os.Stdin, os.Stdout
	filter := &fatalFilter{w: stderr}
	cmd.Stderr = filter
	cmd.SysProcAttr = supervisedAttr()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	oomBefore, countersKnown := oomKills()
	if err := cmd.Start(); err != nil {
		return run()
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	code := cmd.ProcessState.ExitCode()
	switch {
	case filter.cause != "":
		fmt.Fprintf(stderr, "%s: the command failed: %s (set HYPERNOISE_DEBUG=1 to see details)\n", name, filter.cause)
		return ExitFailure
	case killedBy(err, syscall.SIGKILL):
		oomAfter, _ := oomKills()
		fmt.Fprintln(stderr, killMessage(name, oomBefore, oomAfter, countersKnown, peakRSS(cmd.ProcessState)))
		return ExitFailure
	case killedBy(err, syscall.SIGINT):
		fmt.Fprintf(stderr, "%s: interrupted\n", name)
		return ExitInterrupted
	case killedBy(err, syscall.SIGTERM):
		fmt.Fprintf(stderr, "%s: terminated (SIGTERM)\n", name)
		return ExitTerminated
	case code < 0:
		return ExitFailure
	}
	return code
}

// killedBy reports whether the child's wait error says it died of signal sig.
func killedBy(err error, sig syscall.Signal) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// fatalFilter passes a child's standard error through until a line that starts a Go runtime
// failure report ("panic: ", "fatal error: ", "runtime: out of memory"); it keeps that line as
// the cause and swallows the rest (the goroutine dumps). A line starts after '\n' or '\r' (progress
// bars end their lines with '\r').
type fatalFilter struct {
	w       io.Writer
	cause   string
	atStart bool // the next byte starts a line
	started bool
	rest    []byte // the cause line so far, while it is incomplete
}

var fatalPrefixes = [][]byte{[]byte("panic: "), []byte("fatal error: "), []byte("runtime: out of memory")}

func (f *fatalFilter) Write(p []byte) (int, error) {
	n := len(p)
	if !f.started {
		f.started, f.atStart = true, true
	}
	if f.cause != "" || f.rest != nil {
		f.collect(p)
		return n, nil
	}
	for i := 0; i < len(p); i++ {
		if (i == 0 && f.atStart) || (i > 0 && (p[i-1] == '\n' || p[i-1] == '\r')) {
			for _, pre := range fatalPrefixes {
				if bytes.HasPrefix(p[i:], pre) {
					if _, err := f.w.Write(p[:i]); err != nil {
						return n, err
					}
					f.rest = []byte{}
					f.collect(p[i:])
					return n, nil
				}
			}
		}
	}
	f.atStart = n > 0 && (p[n-1] == '\n' || p[n-1] == '\r')
	_, err := f.w.Write(p)
	return n, err
}

// collect accumulates the cause line until its newline.
func (f *fatalFilter) collect(p []byte) {
	if f.cause != "" {
		return
	}
	if i := bytes.IndexByte(p, '\n'); i >= 0 {
		f.cause = string(bytes.TrimSpace(append(f.rest, p[:i]...)))
		f.rest = nil
		return
	}
	if len(f.rest) < 4096 {
		f.rest = append(f.rest, p...)
	}
}
