package fashion

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypernoise/hypernoise/ckpt"
)

// TestEmbeddedTestStatsMatchHeldOut: the embedded test-set statistics are those of the embedded
// held-out classifier's features (retraining it without `eval --write-test-stats` fails here).
func TestEmbeddedTestStatsMatchHeldOut(t *testing.T) {
	backend := backendForTest(t)
	m, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	st, err := DefaultTestStats()
	if err != nil {
		t.Fatal(err)
	}
	want := m.WeightsSHA256(ScopeHeldOut)
	if want == "" || st.HeldOutSHA256 != want {
		t.Fatalf("embedded statistics are for held-out weights %q, the embedded held-out classifier is %q: run hypernoise eval --write-test-stats",
			st.HeldOutSHA256, want)
	}
	got, err := TestStatsFor(backend, m, filepath.Join(t.TempDir(), "no-data"))
	if err != nil || got.HeldOutSHA256 != want {
		t.Fatalf("TestStatsFor the embedded model (no data needed): %v", err)
	}
}

// TestTestStatsForOtherHeldOut: with another held-out classifier (here the same weights in a file
// with other metadata, so another digest) the embedded statistics are refused: computed from the
// test set when it is installed, otherwise an error that says what to do.
func TestTestStatsForOtherHeldOut(t *testing.T) {
	backend := backendForTest(t)
	m, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, part := range Parts {
		data, err := os.ReadFile(filepath.Join(WeightsDir, WeightsFile(part)))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, WeightsFile(part)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := ckpt.Save(m.Context(), "/"+ScopeHeldOut, filepath.Join(dir, WeightsFile("heldout")),
		map[string]string{"part": "heldout", "note": "another file"}); err != nil {
		t.Fatal(err)
	}
	other, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if other.WeightsSHA256(ScopeHeldOut) == m.WeightsSHA256(ScopeHeldOut) {
		t.Fatal("the rewritten held-out file has the embedded one's digest")
	}
	_, err = TestStatsFor(backend, other, filepath.Join(dir, "no-data"))
	if err == nil || !strings.Contains(err.Error(), "not for this held-out classifier") || !strings.Contains(err.Error(), "dataset-fashion-mnist") {
		t.Fatalf("without the data set: %v", err)
	}
	st, err := TestStatsFor(backend, other, "")
	if err != nil {
		t.Skipf("Fashion-MNIST not installed: %v", err)
	}
	if st.HeldOutSHA256 != other.WeightsSHA256(ScopeHeldOut) || st.N != 10000 {
		t.Fatalf("computed statistics: %d images, held-out %q", st.N, st.HeldOutSHA256)
	}
}
