//go:build unix

package safeio

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestReadRefusesNonRegular: a FIFO (with no writer: a plain read would block forever), a device
// and a folder are refused by type, at once, with ErrRefused.
func TestReadRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "spec.json")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	for path, want := range map[string]string{fifo: "FIFO", "/dev/zero": "device", dir: "folder"} {
		_, err := ReadFile(path, JSON)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), want) {
			t.Errorf("ReadFile(%s) = %v, want a refusal naming a %s", path, err, want)
		}
	}
}

// TestReadCap: a file over its kind's cap is refused; one at the cap is read whole.
func TestReadCap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.json")
	data := bytes.Repeat([]byte("x"), 100)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadFile(path, Kind{Name: "test file", Max: 100}); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("at the cap: %v", err)
	}
	if _, err := ReadFile(path, Kind{Name: "test file", Max: 99}); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "more than a test file") {
		t.Fatalf("over the cap: %v", err)
	}
}

// TestWriteRefusesDevicesAndLinksToThem: writing onto a link to a device leaves the link (and the
// device) as they were; writing onto a link to a regular file replaces the file and keeps the link.
func TestWriteRefusesDevicesAndLinksToThem(t *testing.T) {
	dir := t.TempDir()
	devLink := filepath.Join(dir, "null.png")
	if err := os.Symlink("/dev/null", devLink); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/dev/null", devLink, dir} {
		if err := WriteFileAtomic(p, []byte("png")); !errors.Is(err, ErrRefused) {
			t.Errorf("WriteFileAtomic(%s) = %v, want a refusal", p, err)
		}
	}
	if st, err := os.Lstat(devLink); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v %v", st.Mode(), err)
	}
	if st, err := os.Stat("/dev/null"); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		t.Fatalf("/dev/null is no longer a device: %v", err)
	}
	real := filepath.Join(dir, "real.png")
	if err := os.WriteFile(real, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.png")
	if err := os.Symlink("real.png", link); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(link, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(real); string(got) != "new" {
		t.Fatalf("target holds %q, want new", got)
	}
	if st, _ := os.Lstat(link); st.Mode()&os.ModeSymlink == 0 {
		t.Fatal("the link to a regular file was replaced by a file")
	}
	dangling := filepath.Join(dir, "dangling.png")
	if err := os.Symlink("made.png", dangling); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(dangling, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "made.png")); string(got) != "x" {
		t.Fatal("a dangling link's target was not created")
	}
}

// TestLongPathMakesNothing: a path with a name over NAME_MAX, or longer than PATH_MAX, is refused
// before any folder is made.
func TestLongPathMakesNothing(t *testing.T) {
	dir := t.TempDir()
	long := filepath.Join(dir, strings.Repeat("a/", 2100)+"x.png")
	if err := WriteFileAtomic(long, []byte("x")); !errors.Is(err, ErrRefused) {
		t.Fatalf("long path: %v", err)
	}
	name := filepath.Join(dir, "sub", strings.Repeat("n", 250)+".png")
	if err := WriteFileAtomic(name, []byte("x")); !errors.Is(err, ErrRefused) {
		t.Fatalf("long name: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a refused path left %d entries behind", len(entries))
	}
	if s := Shorten(strings.Repeat("é", 1000), 11); len(s) > 60 || !strings.Contains(s, "more bytes") {
		t.Fatalf("Shorten = %s", s)
	}
}

// TestWriteOutputStdout: "-" goes to the writer and creates no file.
func TestWriteOutputStdout(t *testing.T) {
	var b bytes.Buffer
	wd, _ := os.Getwd()
	if err := WriteOutput("-", []byte("png"), &b); err != nil || b.String() != "png" {
		t.Fatalf("stdout: %q %v", b.String(), err)
	}
	if _, err := os.Stat(filepath.Join(wd, "-")); err == nil {
		t.Fatal("a file named - was created")
	}
}
