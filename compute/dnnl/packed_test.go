package dnnl

import (
	"hash/maphash"
	"math/rand/v2"
	"sync"
	"testing"
	"unsafe"
)

// setPackedBudget sets PackedBudget for the test and restores it after.
func setPackedBudget(t *testing.T, b int64) {
	old := PackedBudget.Load()
	PackedBudget.Store(b)
	t.Cleanup(func() { PackedBudget.Store(old) })
}

// TestConvKernelReuse: a kernel's reordered copy is reused while its values are the same and
// reordered again when they change in place (the same slice), forward and backward-data, with and
// without a bias; every result against the definition.
func TestConvKernelReuse(t *testing.T) {
	lib := libOrSkip(t)
	setPackedBudget(t, 1<<30)
	r := rand.New(rand.NewPCG(11, 12))
	s := convCases[0]
	x, k := randF32(r, s.N*s.H*s.W*s.C), randF32(r, s.KH*s.KW*s.C*s.O)
	bias := randF32(r, s.O)
	withBias := func(y []float64) []float64 {
		for i := range y {
			y[i] += float64(bias[i%s.O])
		}
		return y
	}
	h0, f0, _ := lib.PackedStats()
	for round := range 3 {
		kern := NewKernel(k, nil)
		checkAgainst(t, "forward, reused kernel", s, s.KH*s.KW*s.C, naiveConv(s, x, k), func(y []float32) (bool, error) {
			return lib.Conv2DKernel(s, y, x, kern, nil)
		})
		checkAgainst(t, "forward with a bias, reused kernel", s, s.KH*s.KW*s.C, withBias(naiveConv(s, x, k)), func(y []float32) (bool, error) {
			return lib.Conv2DKernel(s, y, x, kern, bias)
		})
		h, f, _ := lib.PackedStats()
		if round == 1 && (h-h0 < 2 || f != f0) {
			t.Fatalf("round 1, same values: %d hits, %d fills since round 0 (want >= 2 hits, no fill)", h-h0, f-f0)
		}
		if round == 2 && f == f0 {
			t.Fatal("round 2, kernel changed in place: no reorder, a stale copy was used")
		}
		h0, f0 = h, f
		if round == 1 {
			k[len(k)-1] += 1 // the same slice, one value changed: the copy must be reordered again
		}
	}
	ybar := randF32(r, s.N*s.OH*s.OW*s.O)
	for range 2 {
		kern := NewKernel(k, nil)
		checkAgainst(t, "backward data, reused kernel", s, s.KH*s.KW*s.O, naiveBackData(s, ybar, k), func(xbar []float32) (bool, error) {
			return lib.ConvBackwardData2DKernel(s, xbar, ybar, kern)
		})
		k[0] -= 0.5
	}
}

// TestConvKernelBudget: with no budget nothing is kept and results stay right; with room for one
// copy, alternating two kernels keeps the first's copy and reorders the second on every call,
// never mixing them up; concurrent callers of one kernel agree.
func TestConvKernelBudget(t *testing.T) {
	lib := libOrSkip(t)
	r := rand.New(rand.NewPCG(13, 14))
	s := convCases[0]
	x := randF32(r, s.N*s.H*s.W*s.C)
	k1, k2 := randF32(r, s.KH*s.KW*s.C*s.O), randF32(r, s.KH*s.KW*s.C*s.O)

	setPackedBudget(t, 0)
	_, f0, _ := lib.PackedStats()
	checkAgainst(t, "forward, no budget", s, s.KH*s.KW*s.C, naiveConv(s, x, k1), func(y []float32) (bool, error) {
		return lib.Conv2DKernel(s, y, x, NewKernel(k1, nil), nil)
	})
	if _, f, _ := lib.PackedStats(); f != f0 {
		t.Fatal("a copy was filled with a zero budget")
	}

	p := lib.conv(convKey{s, convForward})
	if p == nil {
		t.Skip("oneDNN does not run", s)
	}
	_, _, b0 := lib.PackedStats() // copies kept by earlier tests stay
	_, f0, _ = lib.PackedStats()
	PackedBudget.Store(b0 + int64(p.wBytes+64)) // room for one more copy
	for i := range 4 {
		k := k1
		if i%2 == 1 {
			k = k2
		}
		checkAgainst(t, "forward, one-copy budget", s, s.KH*s.KW*s.C, naiveConv(s, x, k), func(y []float32) (bool, error) {
			return lib.Conv2DKernel(s, y, x, NewKernel(k, nil), nil)
		})
		if _, _, b := lib.PackedStats(); b > PackedBudget.Load() {
			t.Fatalf("copies hold %d bytes over a budget of %d", b, PackedBudget.Load())
		}
	}
	if _, f, _ := lib.PackedStats(); f-f0 != 1 {
		t.Fatalf("%d fills with room for one copy, want 1 (k1's; k2 reordered per call)", f-f0)
	}

	PackedBudget.Store(1 << 30)
	want := naiveConv(s, x, k1)
	kern := NewKernel(k1, nil)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			checkAgainst(t, "forward, concurrent", s, s.KH*s.KW*s.C, want, func(y []float32) (bool, error) {
				return lib.Conv2DKernel(s, y, x, kern, nil)
			})
		})
	}
	wg.Wait()
}

// TestNewKernelHash: the hash covers every value of a kernel of several pieces, and is the same
// whether the pieces are hashed here or in ranges on several goroutines.
func TestNewKernelHash(t *testing.T) {
	k := make([]float32, 3*hashChunk+5)
	for i := range k {
		k[i] = float32(i%101) * 0.25
	}
	h := NewKernel(k, nil).hash
	split := func(n int, fn func(lo, hi int)) { // one goroutine per piece, in reverse order
		var wg sync.WaitGroup
		for i := n - 1; i >= 0; i-- {
			wg.Go(func() { fn(i, i+1) })
		}
		wg.Wait()
	}
	if NewKernel(k, split).hash != h {
		t.Fatal("the hash differs when the pieces are hashed in parallel")
	}
	for _, i := range []int{0, hashChunk - 1, 2*hashChunk + 7, len(k) - 1} {
		k[i] += 1
		if NewKernel(k, nil).hash == h || NewKernel(k, split).hash == h {
			t.Fatalf("changing value %d left the hash unchanged", i)
		}
		k[i] -= 1
	}
	if NewKernel(k, nil).hash != h {
		t.Fatal("restoring the values did not restore the hash")
	}
}

// BenchmarkKernelHash times NewKernel's hash on one core over 44 MB of kernels (the small T2I
// fixture's UNet, about 11M float32 weights, in 1.3 MB kernels so that they are read from memory),
// beside hash/maphash (the hash it replaced) and a plain read of the same bytes: MB/s is each one's
// rate. go test ./compute/dnnl -run XXX -bench KernelHash -benchtime 20x
func BenchmarkKernelHash(b *testing.B) {
	const kernels, size = 34, 331776 // 3x3x192x192 float32: 1.3 MB
	ks := make([][]float32, kernels)
	for i := range ks {
		ks[i] = make([]float32, size)
		for j := range ks[i] {
			ks[i][j] = float32(i*size+j) * 1e-3
		}
	}
	bytesOf := func(k []float32) []byte { return unsafe.Slice((*byte)(unsafe.Pointer(&k[0])), 4*len(k)) }
	var sink uint64
	run := func(name string, fn func(k []float32) uint64) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(4 * kernels * size)
			for range b.N {
				for _, k := range ks {
					sink += fn(k)
				}
			}
		})
	}
	run("xxh3", func(k []float32) uint64 { return NewKernel(k, nil).hash })
	seed := maphash.MakeSeed()
	run("maphash", func(k []float32) uint64 { return maphash.Bytes(seed, bytesOf(k)) })
	run("read", func(k []float32) uint64 {
		var s0, s1, s2, s3 uint64
		u := unsafe.Slice((*uint64)(unsafe.Pointer(&k[0])), len(k)/2)
		for j := 0; j+4 <= len(u); j += 4 {
			s0, s1, s2, s3 = s0+u[j], s1+u[j+1], s2+u[j+2], s3+u[j+3]
		}
		return s0 ^ s1 ^ s2 ^ s3
	})
	if sink == 42 {
		b.Log(sink)
	}
}
