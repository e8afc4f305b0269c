package dnnl

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/zeebo/xxh3"
)

// Kernels kept in a primitive's layout between calls.
//
// A convolution primitive takes its kernel in a blocked layout of its own choosing, so each call
// reorders the caller's kernel (HWIO, OIHW or OHWI) into it first. For a model's frozen weights
// that reorder repeats the same work on every forward: on the small T2I fixture it was about a
// fifth of the convolutions' thread time. A Kernel carries a hash of its values, computed once
// by the caller (NewKernel) for all the bands of one convolution; the calls that take a Kernel
// look up the copy reordered for that primitive and that kernel slice, and reuse it when its hash
// matches, else reorder into it again. The hash covers every value, so a slice whose values
// changed since (a buffer recycled for another tensor, a weight updated in place) is reordered
// anew: a stale copy is never used, short of a 64-bit hash collision.
//
// The copies are bounded by PackedBudget bytes in all. Copies are never dropped (a slice recycled
// for another kernel is reordered into the same copy): once the budget is spent, a kernel without
// a copy is reordered into the call's scratch on every call, as without reuse. Dropping the least
// recently used copy instead would, for a model whose kernels cycle through more than the budget
// (the sd-turbo fixture's 3.4 GB, forward after forward), evict every copy just before its next
// use and reorder as much as before plus the bookkeeping.

// PackedBudget bounds the bytes held by reordered kernel copies (see Kernel); 0 turns them off.
var PackedBudget atomic.Int64

func init() { PackedBudget.Store(512 << 20) }

// kernelSeed seeds the kernels' hashes (XXH3, 64 bits) for the whole process, drawn at random so
// that no fixed input collides on every run. XXH3 rather than hash/maphash: on this project's
// machine it hashes about 35 GB/s on one core against maphash's 9.6, as fast as a plain read of the
// same bytes (BenchmarkKernelHash), and the hash reads every kernel value on every convolution.
var kernelSeed = rand.Uint64()

// Kernel is a convolution kernel's values with a hash of them (NewKernel).
type Kernel struct {
	Data []float32
	hash uint64
}

// hashChunk is the number of values hashed as one piece: NewKernel hashes the pieces (possibly in
// parallel) and then the list of their hashes, so the hash does not depend on how they were run.
const hashChunk = 1 << 16

// NewKernel returns k with the hash of its values, by which calls find its reordered copy. The
// pieces of hashChunk values are hashed by ranges(n, fn), which must call fn on ranges covering
// [0, n) once each, possibly at once on several goroutines (the caller's worker pool); nil runs
// fn(0, n) here.
func NewKernel(k []float32, ranges func(n int, fn func(lo, hi int))) Kernel {
	if len(k) == 0 {
		return Kernel{Data: k}
	}
	pieces := (len(k) + hashChunk - 1) / hashChunk
	sums := make([]uint64, pieces)
	hashRange := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			v := k[i*hashChunk : min(len(k), (i+1)*hashChunk)]
			sums[i] = xxh3.HashSeed(unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v)), kernelSeed)
		}
	}
	if ranges == nil || pieces == 1 {
		hashRange(0, pieces)
	} else {
		ranges(pieces, hashRange)
	}
	return Kernel{Data: k, hash: xxh3.HashSeed(unsafe.Slice((*byte)(unsafe.Pointer(&sums[0])), 8*pieces), kernelSeed)}
}

// Conv2DKernel is Conv2D, or Conv2DBias when bias is not nil, with k's reordered copy reused
// across calls (see Kernel).
func (l *Lib) Conv2DKernel(s ConvSpec, y, x []float32, k Kernel, bias []float32) (bool, error) {
	s.Bias = bias != nil
	if s.Bias && len(bias) < s.O {
		return false, fmt.Errorf("dnnl: convolution %+v with a bias of %d values", s, len(bias))
	}
	return l.runKernel(convKey{s, convForward}, x, y, k, true, bias)
}

// ConvBackwardData2DKernel is ConvBackwardData2D with k's reordered copy reused across calls.
func (l *Lib) ConvBackwardData2DKernel(s ConvSpec, xbar, ybar []float32, k Kernel) (bool, error) {
	s.Bias = false
	return l.runKernel(convKey{s, convBackData}, xbar, ybar, k, true, nil)
}

// packedKey identifies a reordered copy: the primitive and the caller's kernel slice.
type packedKey struct {
	p    *convPrim
	addr uintptr
	n    int
}

// packedCopy is one kernel reordered into p's layout. mu is held for reading while a convolution
// reads buf, for writing while buf is (re)filled; hash and filled say what buf holds.
type packedCopy struct {
	mu     sync.RWMutex
	buf    []byte
	ptr    unsafe.Pointer // buf's 64-byte-aligned start
	hash   uint64
	filled bool
}

// packedCache holds the reordered copies of one Lib.
type packedCache struct {
	mu     sync.Mutex
	copies map[packedKey]*packedCopy
	bytes  int64
	// hits and fills count uses of a copy as it was and (re)orders into one.
	hits, fills atomic.Int64
}

// PackedStats returns how many convolution calls reused a reordered kernel copy and how many
// reordered a kernel into one, since the process started, and the bytes the copies hold now.
func (l *Lib) PackedStats() (hits, fills, bytes int64) {
	c := &l.packed
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits.Load(), c.fills.Load(), c.bytes
}

// copyFor returns the copy for (p, k), created if the budget allows, or nil.
func (c *packedCache) copyFor(p *convPrim, k []float32) *packedCopy {
	key := packedKey{p, uintptr(unsafe.Pointer(&k[0])), len(k)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.copies[key]; e != nil {
		return e
	}
	need := int64(p.wBytes + 64)
	if c.bytes+need > PackedBudget.Load() {
		return nil
	}
	if c.copies == nil {
		c.copies = make(map[packedKey]*packedCopy)
	}
	buf := make([]byte, need)
	e := &packedCopy{buf: buf, ptr: unsafe.Pointer(&aligned64(buf, p.wBytes)[0])}
	c.copies[key] = e
	c.bytes += need
	return e
}

// acquire returns the copy for (p, k) holding k's values in p's layout, read-locked (release
// with RUnlock), reordering k into it with reorder when it does not hold them; nil when there is
// no room for a copy.
func (c *packedCache) acquire(p *convPrim, k Kernel, reorder func(dst unsafe.Pointer) error) (*packedCopy, error) {
	e := c.copyFor(p, k.Data)
	if e == nil {
		return nil, nil
	}
	for {
		e.mu.RLock()
		if e.filled && e.hash == k.hash {
			c.hits.Add(1)
			return e, nil
		}
		e.mu.RUnlock()
		e.mu.Lock()
		if !(e.filled && e.hash == k.hash) {
			e.filled = false
			if err := reorder(e.ptr); err != nil {
				e.mu.Unlock()
				return nil, err
			}
			e.hash, e.filled = k.hash, true
			c.fills.Add(1)
		}
		e.mu.Unlock()
	}
}
