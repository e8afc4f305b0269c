package dnnl

import (
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
)

// libOrSkip returns the default oneDNN, skipping when it is not installed (CI installs libdnnl2) and
// failing when its file is there but does not load.
func libOrSkip(t *testing.T) *Lib {
	t.Helper()
	lib, err := Default()
	if err == nil {
		return lib
	}
	for _, p := range Candidates {
		if _, e := os.Stat(p); e == nil && os.Getenv(EnvLibrary) == "" {
			t.Fatalf("%s is installed but does not load: %v", p, err)
		}
	}
	t.Skip("oneDNN is not installed:", err)
	return nil
}

// eachTap calls fn for every product term of the convolution s: output position (n, i, j), kernel
// tap (u, v) and the input position (h, w) it reads, inside x.
func eachTap(s ConvSpec, fn func(n, i, j, u, v, h, w int)) {
	for n := range s.N {
		for i := range s.OH {
			for j := range s.OW {
				for u := range s.KH {
					for v := range s.KW {
						h, w := i*s.SH+u*s.DH-s.PT, j*s.SW+v*s.DW-s.PL
						if h >= 0 && h < s.H && w >= 0 && w < s.W {
							fn(n, i, j, u, v, h, w)
						}
					}
				}
			}
		}
	}
}

// naiveConv is ConvSpec's definition, in float64.
func naiveConv(s ConvSpec, x, k []float32) []float64 {
	y := make([]float64, s.N*s.OH*s.OW*s.O)
	eachTap(s, func(n, i, j, u, v, h, w int) {
		for o := range s.O {
			for c := range s.C {
				y[((n*s.OH+i)*s.OW+j)*s.O+o] += float64(x[((n*s.H+h)*s.W+w)*s.C+c]) * float64(k[((u*s.KW+v)*s.C+c)*s.O+o])
			}
		}
	})
	return y
}

func randF32(r *rand.Rand, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(r.NormFloat64())
	}
	return out
}

// convCases are the embedded models' shapes (3x3 same convolutions, a strided one, a 1x1, the
// kernel gradient's form with a 7x7 "kernel") and odd ones: asymmetric padding, dilation, windows
// that stop short of the end, non-square sizes.
var convCases = []ConvSpec{
	{N: 4, H: 7, W: 7, C: 32, KH: 3, KW: 3, O: 32, OH: 7, OW: 7, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1},
	{N: 3, H: 14, W: 14, C: 32, KH: 3, KW: 3, O: 64, OH: 7, OW: 7, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1},
	{N: 2, H: 7, W: 7, C: 48, KH: 1, KW: 1, O: 128, OH: 7, OW: 7, SH: 1, SW: 1, DH: 1, DW: 1},
	{N: 5, H: 7, W: 7, C: 6, KH: 7, KW: 7, O: 8, OH: 3, OW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1},
	{N: 2, H: 9, W: 6, C: 5, KH: 3, KW: 2, O: 7, OH: 8, OW: 5, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 0},
	{N: 2, H: 11, W: 10, C: 3, KH: 3, KW: 3, O: 4, OH: 9, OW: 8, SH: 1, SW: 1, DH: 2, DW: 2, PT: 1, PL: 1},
	{N: 1, H: 8, W: 9, C: 4, KH: 3, KW: 3, O: 5, OH: 3, OW: 4, SH: 3, SW: 2, DH: 1, DW: 1, PT: 0, PL: 0},
	{N: 3, H: 14, W: 14, C: 4, KH: 3, KW: 3, O: 32, OH: 14, OW: 14, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1},
}

// checkAgainst runs run into a NaN-filled slice of len(want) values and requires it to have run and
// to match want, the float64 definition, within float32 rounding of sums of terms products.
func checkAgainst(t *testing.T, what string, s ConvSpec, terms int, want []float64, run func(out []float32) (bool, error)) {
	t.Helper()
	out := make([]float32, len(want))
	for i := range out {
		out[i] = float32(math.NaN())
	}
	if ran, err := run(out); err != nil || !ran {
		t.Fatalf("%s %+v: ran %v, err %v", what, s, ran, err)
	}
	for i := range want {
		if d := math.Abs(float64(out[i]) - want[i]); !(d <= 1e-5*math.Sqrt(float64(terms))*(1+math.Abs(want[i]))) {
			t.Fatalf("%s %+v: entry %d = %g, want %g", what, s, i, out[i], want[i])
		}
	}
}

// TestConv2DMatchesDefinition checks the convolution against its definition on every case.
func TestConv2DMatchesDefinition(t *testing.T) {
	lib := libOrSkip(t)
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range convCases {
		x, k := randF32(r, s.N*s.H*s.W*s.C), randF32(r, s.KH*s.KW*s.C*s.O)
		checkAgainst(t, "forward", s, s.KH*s.KW*s.C, naiveConv(s, x, k), func(y []float32) (bool, error) {
			return lib.Conv2D(s, y, x, k)
		})
		t.Logf("%dx%d %d->%d k%dx%d s%d d%d: %s", s.H, s.W, s.C, s.O, s.KH, s.KW, s.SH, s.DH, lib.ConvImpl(s))
		// The same kernel given as OIHW.
		so := s
		so.OIHW = true
		ko := make([]float32, len(k))
		for u := range s.KH {
			for v := range s.KW {
				for c := range s.C {
					for o := range s.O {
						ko[((o*s.C+c)*s.KH+u)*s.KW+v] = k[((u*s.KW+v)*s.C+c)*s.O+o]
					}
				}
			}
		}
		checkAgainst(t, "forward, OIHW kernel", so, s.KH*s.KW*s.C, naiveConv(s, x, k), func(y []float32) (bool, error) {
			return lib.Conv2D(so, y, x, ko)
		})
		// With a bias, in the primitive.
		bias := randF32(r, s.O)
		wantB := naiveConv(s, x, k)
		for i := range wantB {
			wantB[i] += float64(bias[i%s.O])
		}
		checkAgainst(t, "forward with a bias", so, s.KH*s.KW*s.C, wantB, func(y []float32) (bool, error) {
			return lib.Conv2DBias(so, y, x, ko, bias)
		})
	}
	// Only the forward convolution takes an OIHW kernel.
	s := convCases[0]
	s.OIHW = true
	buf := make([]float32, s.N*s.H*s.W*s.C+s.KH*s.KW*s.C*s.O+s.N*s.OH*s.OW*s.O)
	if ran, _ := lib.ConvBackwardData2D(s, buf, buf, buf); ran {
		t.Error("the backward-data convolution ran with an OIHW kernel")
	}
}

// naiveBackData is ConvBackwardData2D's definition, in float64, with k as [O, KH, KW, C].
func naiveBackData(s ConvSpec, ybar, k []float32) []float64 {
	xbar := make([]float64, s.N*s.H*s.W*s.C)
	eachTap(s, func(n, i, j, u, v, h, w int) {
		for o := range s.O {
			g := float64(ybar[((n*s.OH+i)*s.OW+j)*s.O+o])
			for c := range s.C {
				xbar[((n*s.H+h)*s.W+w)*s.C+c] += g * float64(k[((o*s.KH+u)*s.KW+v)*s.C+c])
			}
		}
	})
	return xbar
}

// TestConvBackwardDataMatchesDefinition checks the input gradient (transposed convolution) against
// its definition on every case, strided and dilated ones included.
func TestConvBackwardDataMatchesDefinition(t *testing.T) {
	lib := libOrSkip(t)
	r := rand.New(rand.NewPCG(5, 6))
	for _, s := range convCases {
		ybar, k := randF32(r, s.N*s.OH*s.OW*s.O), randF32(r, s.KH*s.KW*s.C*s.O)
		checkAgainst(t, "backward data", s, s.KH*s.KW*s.O, naiveBackData(s, ybar, k), func(xbar []float32) (bool, error) {
			return lib.ConvBackwardData2D(s, xbar, ybar, k)
		})
	}
}

// naiveBackWeights is ConvBackwardWeights2D's definition, in float64, the gradient as [KH, KW, C, O].
func naiveBackWeights(s ConvSpec, x, ybar []float32) []float64 {
	kbar := make([]float64, s.KH*s.KW*s.C*s.O)
	eachTap(s, func(n, i, j, u, v, h, w int) {
		for c := range s.C {
			xv := float64(x[((n*s.H+h)*s.W+w)*s.C+c])
			for o := range s.O {
				kbar[((u*s.KW+v)*s.C+c)*s.O+o] += xv * float64(ybar[((n*s.OH+i)*s.OW+j)*s.O+o])
			}
		}
	})
	return kbar
}

// TestConvBackwardWeightsMatchesDefinition checks the kernel gradient against its definition on every
// case.
func TestConvBackwardWeightsMatchesDefinition(t *testing.T) {
	lib := libOrSkip(t)
	r := rand.New(rand.NewPCG(7, 8))
	for _, s := range convCases {
		x, ybar := randF32(r, s.N*s.H*s.W*s.C), randF32(r, s.N*s.OH*s.OW*s.O)
		checkAgainst(t, "backward weights", s, s.N*s.OH*s.OW, naiveBackWeights(s, x, ybar), func(kbar []float32) (bool, error) {
			return lib.ConvBackwardWeights2D(s, kbar, x, ybar)
		})
	}
}

// TestConv2DConcurrent runs one shape from several goroutines at once (the primitives are shared,
// the scratchpads are not) and requires each result to equal the one computed alone.
func TestConv2DConcurrent(t *testing.T) {
	lib := libOrSkip(t)
	s := convCases[0]
	r := rand.New(rand.NewPCG(3, 4))
	x, k := randF32(r, s.N*s.H*s.W*s.C), randF32(r, s.KH*s.KW*s.C*s.O)
	want := make([]float32, s.N*s.OH*s.OW*s.O)
	if ran, err := lib.Conv2D(s, want, x, k); !ran || err != nil {
		t.Fatal(ran, err)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			y := make([]float32, len(want))
			for range 20 {
				if _, err := lib.Conv2D(s, y, x, k); err != nil {
					errs <- err.Error()
					return
				}
				for i := range y {
					if y[i] != want[i] {
						errs <- "a concurrent result differs from the one computed alone"
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestConv2DRefusals: a spec whose windows stop short of x's end (it would need negative padding) is
// not run (false, y untouched), and slices too short for the spec are an error.
func TestConv2DRefusals(t *testing.T) {
	lib := libOrSkip(t)
	s := ConvSpec{N: 2, H: 11, W: 10, C: 3, KH: 3, KW: 3, O: 4, OH: 7, OW: 6, SH: 1, SW: 1, DH: 2, DW: 2, PT: 1, PL: 1}
	y := make([]float32, s.N*s.OH*s.OW*s.O)
	y[0] = 42
	if ran, err := lib.Conv2D(s, y, make([]float32, s.N*s.H*s.W*s.C), make([]float32, 9*s.C*s.O)); ran || err != nil || y[0] != 42 {
		t.Errorf("windows short of the end: ran %v, err %v, y[0] %g", ran, err, y[0])
	}
	if _, err := lib.Conv2D(convCases[0], make([]float32, 3), make([]float32, 3), make([]float32, 3)); err == nil {
		t.Error("short slices: no error")
	}
}

// TestOpenRefusals: a path that does not load, and a library that is not oneDNN, are errors that
// name the file.
func TestOpenRefusals(t *testing.T) {
	if _, err := Open("/nonexistent/libdnnl.so.2"); err == nil || !strings.Contains(err.Error(), "/nonexistent/libdnnl.so.2") {
		t.Errorf("missing file: %v", err)
	}
	libm := "/usr/lib/x86_64-linux-gnu/libm.so.6"
	if _, err := os.Stat(libm); err != nil {
		t.Skip("no libm at", libm)
	}
	if _, err := Open(libm); err == nil || !strings.Contains(err.Error(), "does not export dnnl_version") {
		t.Errorf("not oneDNN: %v", err)
	}
}
