package cli

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// Exit codes of a command stopped by a signal (128 + the signal's number, the shells' convention).
const (
	ExitInterrupted = 130 // SIGINT (Ctrl-C)
	ExitTerminated  = 143 // SIGTERM
)

// OnInterrupt registers what the command says if it is interrupted (Ctrl-C or SIGTERM) from now
// on: kept returns one or more lines saying what was kept and how to continue (e.g. "the
// checkpoint of step 120 in run/ is kept; continue with the same command and --resume"). Only the
// latest registration counts. Files are written atomically everywhere, so stopping between two
// writes is safe.
func (env *Env) OnInterrupt(kept func() string) {
	env.intMu.Lock()
	env.onInt = kept
	env.intMu.Unlock()
}

// HandleSignals stops Main's handling of SIGINT and SIGTERM for the rest of the command, which
// then handles them itself (serve drains its requests on SIGTERM instead of exiting at once).
// Calling it again does nothing.
func (env *Env) HandleSignals() {
	env.intMu.Lock()
	stop := env.stopCatch
	env.stopCatch = nil
	env.intMu.Unlock()
	if stop != nil {
		stop()
	}
}

// catchInterrupts makes SIGINT and SIGTERM print the command's OnInterrupt message and exit with
// 130 or 143 (exit is os.Exit in the command, a stub in tests). It returns a function that stops
// catching.
func (env *Env) catchInterrupts(name string, stderr io.Writer, exit func(int)) func() {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case s := <-sigs:
			env.intMu.Lock()
			kept := env.onInt
			env.intMu.Unlock()
			what, code := "interrupted", ExitInterrupted
			if s == syscall.SIGTERM {
				what, code = "terminated (SIGTERM)", ExitTerminated
			}
			msg := ""
			if kept != nil {
				msg = kept()
			}
			if msg == "" {
				fmt.Fprintf(stderr, "%s: %s\n", name, what)
			} else {
				fmt.Fprintf(stderr, "%s: %s; %s\n", name, what, msg)
			}
			exit(code)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
		wg.Wait()
	}
}
