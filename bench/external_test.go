package bench

import (
	"strings"
	"testing"
)

// TestTorchFigures: the last JSON line of the command's output is its figures; a failing command
// is an error naming its last line of standard error, and output without JSON is an error.
func TestTorchFigures(t *testing.T) {
	v, err := TorchFigures(`echo 'warming up'; echo '{"forward_ms_per_image": 12.5}'; echo done`)
	if err != nil || v["forward_ms_per_image"] != 12.5 {
		t.Fatalf("got %v, %v; want forward_ms_per_image 12.5", v, err)
	}
	if _, err := TorchFigures(`echo 'no module named torch' >&2; exit 3`); err == nil || !strings.Contains(err.Error(), "no module named torch") {
		t.Fatalf("failing command: %v", err)
	}
	if _, err := TorchFigures(`echo plain`); err == nil {
		t.Fatal("output without a JSON line must be an error")
	}
}
