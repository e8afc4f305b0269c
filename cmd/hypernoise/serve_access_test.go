package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// localRequest is httptest.NewRequest addressed to 127.0.0.1 (the server refuses the default Host
// example.com, as it refuses any host name it does not serve under).
func localRequest(method, target string, body io.Reader) *http.Request {
	r := httptest.NewRequest(method, target, body)
	r.Host = "127.0.0.1"
	return r
}

func TestLoadKeys(t *testing.T) {
	f := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(f, []byte("# comment\n  key-one-123456  \n\nkey-two-123456\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvAPIKeys, "env-key-123456, env-key-654321")
	keys, err := loadKeys(f)
	if want := []string{"key-one-123456", "key-two-123456", "env-key-123456", "env-key-654321"}; err != nil || !slices.Equal(keys, want) {
		t.Errorf("keys %q, %v; want %q", keys, err, want)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	_ = os.WriteFile(empty, []byte("# none\n"), 0o600)
	if _, err := loadKeys(empty); err == nil {
		t.Error("a key file without keys was accepted")
	}
	for addr, want := range map[string]string{"127.0.0.1:80": "", "localhost:80": "", "[::1]:80": "", "gen.example:80": "gen.example"} {
		if host, err := checkListen(addr, 0, addr == "gen.example:80"); err != nil || host != want {
			t.Errorf("checkListen(%s): %q, %v", addr, host, err)
		}
	}
}
