package doctor

import (
	"encoding/json"
	"testing"

	"github.com/hypernoise/hypernoise/compute"
)

func TestCheckReportsAMeasuredMatmul(t *testing.T) {
	backend, err := compute.NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
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
	for _, k := range []string{"backend", "cores", "dataset", "models", "matmul"} {
		if _, ok := back[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
}
