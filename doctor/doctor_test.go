package doctor

import (
	"encoding/json"
	"testing"

	"github.com/hypernoise/hypernoise/compute"
	"github.com/hypernoise/hypernoise/internal/testutil"
)

func TestCheckReportsAMeasuredMatmul(t *testing.T) {
	backend := testutil.Backend(t)
	rep, err := Check(backend, 64)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Cores < 1 || rep.Matmul.N != 64 || !(rep.Matmul.GFLOPS > 0) || !(rep.Matmul.Seconds > 0) {
		t.Errorf("implausible report: %+v", rep)
	}
	if rep.Models.Present == (rep.Models.Problem != "") {
		t.Errorf("models present=%v but problem=%q", rep.Models.Present, rep.Models.Problem)
	}
	if !rep.Dataset.Installed && rep.Dataset.Install == "" {
		t.Error("dataset missing without an install hint")
	}
	data, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"backend", "cores", "dataset", "models", "matmul", "matrix_path"} {
		if _, ok := back[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
}

// TestMatrixPath: the patched backend's matrix path is the one compute reports; the unpatched one and
// a patched one with blas=off are the slow path with a reason.
func TestMatrixPath(t *testing.T) {
	for _, c := range []struct {
		name     string
		wantFast bool
	}{
		{"go", compute.MatmulPath().Fast},
		{"go-stock", false},
		{"go:blas=off", false},
	} {
		backend, err := compute.NewBackend(c.name)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Check(backend, 32)
		backend.Finalize()
		if err != nil {
			t.Fatal(err)
		}
		mp := rep.MatrixPath
		if mp.Fast != c.wantFast || (!mp.Fast && mp.Reason == "") {
			t.Errorf("%s: matrix path %+v, want fast=%v (and a reason when slow)", c.name, mp, c.wantFast)
		}
	}
}
