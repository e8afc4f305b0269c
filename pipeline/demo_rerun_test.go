package pipeline

import (
	"errors"
	"github.com/hypernoise/hypernoise/infer"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypernoise/hypernoise/hypernet"
)

// TestSameDemoRun: a previous demo's run is continued only when planned for the same steps and
// batch; otherwise the refusal is a run-folder error (exit 2) naming --force.
func TestSameDemoRun(t *testing.T) {
	dir := t.TempDir()
	o := TrainOptions{OutDir: dir}
	o.Train.Steps, o.Train.BatchSize = 300, 32
	if err := sameDemoRun(o); !errors.Is(err, infer.ErrRunFolder) {
		t.Errorf("no state: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, hypernet.CheckpointJSON), []byte(`{"step": 50, "config": {"steps": 300, "batch_size": 32}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := sameDemoRun(o); err != nil {
		t.Errorf("same plan: %v", err)
	}
	o.Train.Steps = 60
	if err := sameDemoRun(o); !errors.Is(err, infer.ErrRunFolder) || !strings.Contains(err.Error(), "pass --force") {
		t.Errorf("other plan: %v", err)
	}
}
