package hypernet

import (
	"fmt"
	"strings"
	"sync"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// SharedExec is a graph function over a context shared with other graphs, safe for concurrent use:
// a graph is built and compiled once per input shape under lock.Lock (building reads and may add
// variables of the shared context), and run under lock.RLock, so runs proceed concurrently with
// each other but never while another graph is being built on the same context.
type SharedExec struct {
	exec     *context.Exec
	lock     *sync.RWMutex
	mu       sync.Mutex
	compiled map[string]bool
}

// NewSharedExec wraps context.NewExec(backend, ctx, fn); lock nil means a private lock.
func NewSharedExec[F context.ExecGraphFn](backend backends.Backend, ctx *context.Context, lock *sync.RWMutex, fn F) (*SharedExec, error) {
	if lock == nil {
		lock = &sync.RWMutex{}
	}
	e, err := context.NewExec(backend, ctx, fn)
	if err != nil {
		return nil, err
	}
	return &SharedExec{exec: e, lock: lock, compiled: map[string]bool{}}, nil
}

func shapeKey(args []*tensors.Tensor) string {
	var b strings.Builder
	for _, a := range args {
		b.WriteString(a.Shape().String())
		b.WriteByte(';')
	}
	return b.String()
}

// Exec runs the graph for args, building and compiling it first if their shapes are new.
func (e *SharedExec) Exec(args ...*tensors.Tensor) (outs []*tensors.Tensor, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	in := make([]any, len(args))
	for i, a := range args {
		in[i] = a
	}
	key := shapeKey(args)
	e.mu.Lock()
	done := e.compiled[key]
	e.mu.Unlock()
	if !done {
		e.lock.Lock()
		err := e.exec.PreCompile(in...)
		e.lock.Unlock()
		if err != nil {
			return nil, err
		}
		e.mu.Lock()
		e.compiled[key] = true
		e.mu.Unlock()
	}
	e.lock.RLock()
	defer e.lock.RUnlock()
	return e.exec.Exec(in...)
}

// Finalize releases the compiled graphs.
func (e *SharedExec) Finalize() { e.exec.Finalize() }

// PaddedRows is the row count a chunk of rows runs with: the next power of two >= rows, at most
// chunk (and at least rows). Padding to powers of two bounds the number of compiled shapes.
func PaddedRows(rows, chunk int) int {
	p := 1
	for p < rows {
		p *= 2
	}
	return max(rows, min(p, chunk))
}

// PadRows returns rows [lo, hi) of flat (rows of rowSize values) followed by zero rows up to
// padded rows.
func PadRows[T any](flat []T, rowSize, lo, hi, padded int) []T {
	out := make([]T, padded*rowSize)
	copy(out, flat[lo*rowSize:hi*rowSize])
	return out
}

// Chunks calls f for consecutive row ranges [lo, hi) of [0, n), each at most chunk rows long.
func Chunks(n, chunk int, f func(lo, hi int) error) error {
	chunk = max(chunk, 1)
	for lo := 0; lo < n; lo += chunk {
		if err := f(lo, min(n, lo+chunk)); err != nil {
			return err
		}
	}
	return nil
}
