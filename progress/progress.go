// Package progress reports the progress of long work (training, evaluation) without tying the
// library to a terminal: library functions take a Func, and the command line supplies one that
// draws a progress bar on a terminal and prints plain log lines otherwise.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Func is called as work advances: done of total units, with a short status (e.g. "loss 0.12").
// A nil Func is valid and reports nothing.
type Func func(done, total int, status string)

// Report calls f if it is not nil.
func (f Func) Report(done, total int, status string) {
	if f != nil {
		f(done, total, status)
	}
}

// New returns a Func that writes to w: a progress bar if w is a terminal, otherwise one plain line
// at most every interval (and at the end). desc prefixes every line. quiet returns a no-op.
func New(w io.Writer, desc string, quiet bool) Func {
	if quiet {
		return nil
	}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		var mu sync.Mutex
		var bar *progressbar.ProgressBar
		return func(done, total int, status string) {
			mu.Lock()
			defer mu.Unlock()
			if bar == nil || bar.GetMax() != total {
				bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(w),
					progressbar.OptionSetDescription(desc), progressbar.OptionShowCount(),
					progressbar.OptionSetElapsedTime(true), progressbar.OptionSetPredictTime(true),
					progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
			}
			bar.Describe(desc + " " + status)
			_ = bar.Set(done)
		}
	}
	var mu sync.Mutex
	var last time.Time
	start := time.Now()
	const interval = 5 * time.Second
	return func(done, total int, status string) {
		mu.Lock()
		defer mu.Unlock()
		if done < total && time.Since(last) < interval {
			return
		}
		last = time.Now()
		fmt.Fprintf(w, "%s %d/%d %s (%.0fs)\n", desc, done, total, status, time.Since(start).Seconds())
	}
}
