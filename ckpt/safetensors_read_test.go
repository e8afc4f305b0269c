package ckpt

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hypernoise/hypernoise/internal/safeio"
)

// TestReadSafetensorsChecksHeader: a file is read only when its size is what its header
// describes; padding, truncation, a huge declared header and a non-regular file are refused.
func TestReadSafetensorsChecksHeader(t *testing.T) {
	dir := t.TempDir()
	data, err := Encode(newCtx(), "/", nil)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if got, err := ReadSafetensors(write("ok.safetensors", data)); err != nil || string(got) != string(data) {
		t.Fatalf("a valid file: %v", err)
	}
	huge := append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0}, data[8:]...)
	for name, b := range map[string][]byte{
		"padded":    append(append([]byte{}, data...), make([]byte, 1000)...),
		"truncated": data[:len(data)-10],
		"huge":      huge,
		"tiny":      data[:5],
	} {
		if _, err := ReadSafetensors(write(name, b)); err == nil || !strings.Contains(err.Error(), "not a valid safetensors file") {
			t.Errorf("%s: err %v", name, err)
		}
	}
	fifo := filepath.Join(dir, "fifo.safetensors")
	if err := syscall.Mkfifo(fifo, 0o644); err == nil {
		if _, err := ReadSafetensors(fifo); !errors.Is(err, safeio.ErrRefused) {
			t.Errorf("FIFO: %v", err)
		}
	}
}
