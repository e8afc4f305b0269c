package infer_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/pipeline/hntest"
)

// copyFolder copies a hypernetwork folder's files into a new temporary folder named name.
func copyFolder(t *testing.T, src, name string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{infer.WeightsFile, infer.ConfigFile} {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestFolderReadOnce: an opened folder is read and decoded once. Once its weights are decoded,
// its files can be gone and it still loads, into two pipelines (so no loader reads it again);
// and a folder whose weights were damaged after OpenFolder is refused by Weights and LoadFolder.
func TestFolderReadOnce(t *testing.T) {
	dirs := trainedFolders()
	dir := copyFolder(t, dirs[0], "hn0")
	f, err := infer.OpenFolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	if f.Name() != "hn0" || f.Config.RewardSpec != "align=1" {
		t.Fatalf("opened %s: name %q, reward %q", dir, f.Name(), f.Config.RewardSpec)
	}
	if _, err := f.Weights(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		p := hntest.Pipeline(t)
		if _, err := p.LoadFolder(f); err != nil {
			t.Fatalf("pipeline %d: loading the opened folder after its files were removed: %v", i, err)
		}
	}

	damaged := copyFolder(t, dirs[1], "hn1")
	g, err := infer.OpenFolder(damaged)
	if err != nil {
		t.Fatal(err)
	}
	w := filepath.Join(damaged, infer.WeightsFile)
	data, err := os.ReadFile(w)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 1
	if err := os.WriteFile(w, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := hntest.Pipeline(t).LoadFolder(g); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("a weights file changed after OpenFolder: err = %v, want the SHA-256 mismatch", err)
	}
}
