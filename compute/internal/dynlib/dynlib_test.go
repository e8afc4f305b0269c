package dynlib

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFind: the environment variable's "off" and path, the candidates in order (a missing absolute
// file skipped, a failing one named), and the messages.
func TestFind(t *testing.T) {
	dir := t.TempDir()
	present := filepath.Join(dir, "libpresent.so")
	broken := filepath.Join(dir, "libbroken.so")
	for _, p := range []string{present, broken} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var opened []string
	open := func(path string) (string, error) {
		opened = append(opened, path)
		if path == broken || strings.HasSuffix(path, "nowhere.so") {
			return "", errors.New("cannot load " + path)
		}
		return "lib:" + path, nil
	}
	off := errors.New("test: off")
	s := Search{Env: "DYNLIB_TEST_LIB", Prefix: "test", Name: "test library", Install: "apt-get install x", Off: off,
		Candidates: []string{filepath.Join(dir, "libmissing.so"), broken, present}}

	t.Setenv(s.Env, "")
	got, err := Find(s, open)
	if err != nil || got != "lib:"+present || strings.Join(opened, ",") != broken+","+present {
		t.Errorf("candidates: got %q, %v after opening %v", got, err, opened)
	}
	t.Setenv(s.Env, "Off")
	if _, err := Find(s, open); err != off {
		t.Errorf("off: %v", err)
	}
	t.Setenv(s.Env, "/nowhere.so")
	if _, err := Find(s, open); err == nil || !strings.Contains(err.Error(), "cannot load /nowhere.so (from $DYNLIB_TEST_LIB; unset it") ||
		!strings.Contains(err.Error(), "install it with: apt-get install x") {
		t.Errorf("bad path: %v", err)
	}
	t.Setenv(s.Env, "")
	s.Candidates = []string{broken, "relative-nowhere.so"}
	if _, err := Find(s, open); err == nil || err.Error() != "test: no test library found (cannot load "+broken+
		"; cannot load relative-nowhere.so); install it with: apt-get install x" {
		t.Errorf("none found: %v", err)
	}
}
