package compute

import "sync"

// poolSlice returns a slice of n values of T from p (contents undefined): one p held, when it is a
// []T of at least n values, else a new one. Hand it back with p.Put. The kernels' scratch pools
// (convScratch, attnScratch and the normalizations', normnhwc.go) keep their slices between calls, so
// a forward does not take new pages for them from the system on every call.
func poolSlice[T any](p *sync.Pool, n int) *[]T {
	if s, ok := p.Get().(*[]T); ok && cap(*s) >= n {
		*s = (*s)[:n]
		return s
	}
	s := make([]T, n)
	return &s
}
