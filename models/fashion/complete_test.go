package fashion

import (
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

// A weights file written by another architecture (here: the held-out classifier's weights shipped
// as the reward classifier) must be refused, not run with random weights for what is missing.
func TestLoadRefusesWeightsOfAnotherArchitecture(t *testing.T) {
	heldout, err := fs.ReadFile(embedded, WeightsDir+"/"+WeightsFile(ScopeHeldOut))
	if err != nil {
		t.Fatal(err)
	}
	_, err = LoadFS(fstest.MapFS{WeightsFile(ScopeClassifier): {Data: heldout}})
	if err == nil || !strings.Contains(err.Error(), "classifier weights do not match") ||
		!strings.Contains(err.Error(), "hypernoise zoo train classifier") {
		t.Errorf("err = %v", err)
	}
	// The right file loads.
	good, err := fs.ReadFile(embedded, WeightsDir+"/"+WeightsFile(ScopeClassifier))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFS(fstest.MapFS{WeightsFile(ScopeClassifier): {Data: good}}); err != nil {
		t.Errorf("the shipped classifier weights: %v", err)
	}
}
