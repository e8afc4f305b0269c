package serve

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// chromium returns the headless browser to test the page with ($HN_CHROMIUM, else chromium on
// the PATH or at /usr/bin/chromium), or "".
func chromium() string {
	if p := os.Getenv("HN_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	return ""
}

// dumpDOM loads url in headless Chromium, lets its JavaScript run and returns the DOM.
func dumpDOM(t *testing.T, bin, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--no-first-run",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=120000", "--dump-dom", url)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	return string(out)
}

// TestBrowser loads the page in headless Chromium with a query that makes it generate on load
// (HyperNoise beside base on the same seeds), lets its JavaScript run, and checks in the resulting
// DOM that every image arrived and decoded as a 28-pixel-wide PNG. The server needs an API key:
// without one the page shows its key form; with the key (given in the URL fragment, which the
// browser never sends) it generates.
func TestBrowser(t *testing.T) {
	bin := chromium()
	if bin == "" {
		t.Skip("SKIPPED: headless Chromium not found (Debian package chromium; .ci/run installs it); the web page was not tested in a browser")
	}
	cfg := DefaultConfig()
	cfg.Keys = []string{testKey}
	s := newServer(t, cfg)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	page := srv.URL + "/?prompt=sneaker&method=hypernoise&n=3&seed=7&auto=1"
	if dom := dumpDOM(t, bin, page); !strings.Contains(dom, `<form id="keyform">`) || !strings.Contains(dom, `id="status">API key needed<`) {
		t.Errorf("without a key the page does not ask for one; DOM:\n%s", dom)
	}
	dom := dumpDOM(t, bin, page+"#key="+testKey)
	if !strings.Contains(dom, `id="status">rendered 6 images<`) {
		t.Fatalf("the page did not render the 6 images (3 base, 3 hypernoise); DOM:\n%s", dom)
	}
	if n := strings.Count(dom, `data-loaded="28"`); n != 6 {
		t.Errorf("%d images decoded at 28 pixels wide, want 6", n)
	}
	for _, want := range []string{"<h2>base</h2>", "<h2>hypernoise · align</h2>", `seed 7`} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}
