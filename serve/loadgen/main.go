// Command loadgen is the load benchmark of `hypernoise serve`: C concurrent clients send a mix of
// valid and invalid requests to a running server for a fixed time over loopback, and it reports
// requests per second, latency percentiles, answers by status and, with -pid, the server's
// resident memory over the run (to see that it stays flat).
//
//	go run ./serve/loadgen -url http://127.0.0.1:8080 -clients 50 -duration 30s -pid $(pgrep -n hypernoise)
//
// -mode mix (the default) draws each request from a seeded stream: 60% base n in [1, 4] (half of
// them through /v1/images/generations), 10% hypernoise n=2 (when the server has a hypernetwork),
// 5% best-of-n n=1, 5% GET /v1/models or /healthz, and 20% invalid: an unknown prompt, malformed
// JSON, n out of range, an oversized body, GET on /v1/generate, an unknown model, and (with
// -key) a missing key, a wrong key or a key in the query string.
//
// -mode images sends only OpenAI image requests of -n images (-model, default the server's
// hypernetwork), e.g. to compare 32 clients of n=1 with one client of n=16:
//
//	go run ./serve/loadgen -mode images -clients 32 -n 1 -duration 20s
//	go run ./serve/loadgen -mode images -clients 1 -n 16 -duration 20s
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Report is the benchmark's result (-json prints it).
type Report struct {
	Clients     int            `json:"clients"`
	Seconds     float64        `json:"seconds"`
	Requests    int            `json:"requests"`
	PerSecond   float64        `json:"requests_per_second"`
	ByStatus    map[string]int `json:"by_status"` // "200", "400", ..., "error" for transport errors
	P50ms       float64        `json:"p50_ms"`
	P99ms       float64        `json:"p99_ms"`
	MaxMs       float64        `json:"max_ms"`
	OKP50ms     float64        `json:"ok_p50_ms"` // latency of the 200 answers to generations
	OKP99ms     float64        `json:"ok_p99_ms"`
	Generated   int            `json:"images_generated"`
	ImagesPerS  float64        `json:"images_per_second"`
	RSSFirstMiB float64        `json:"server_rss_first_half_max_mib,omitempty"`
	RSSLastMiB  float64        `json:"server_rss_second_half_max_mib,omitempty"`
	HWMMiB      float64        `json:"server_peak_rss_mib,omitempty"` // VmHWM at the end
}

type result struct {
	status  int // 0: transport error
	latency time.Duration
	gen     bool
	images  int
}

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "server address")
	clients := flag.Int("clients", 50, "concurrent clients")
	duration := flag.Duration("duration", 30*time.Second, "how long to send requests")
	pid := flag.Int("pid", 0, "server process id, to sample its memory (Linux /proc)")
	hypernet := flag.Bool("hypernet", true, "include hypernoise requests (the server has one hypernetwork)")
	asJSON := flag.Bool("json", false, "print the report as JSON")
	flag.StringVar(&opt.key, "key", "", "API key to send (Authorization: Bearer)")
	flag.StringVar(&opt.mode, "mode", "mix", "mix (valid and invalid requests) or images (OpenAI image requests only)")
	flag.StringVar(&opt.model, "model", "", "model of -mode images (default: the server's only hypernetwork)")
	flag.IntVar(&opt.n, "n", 1, "images per request of -mode images")
	flag.Parse()
	if opt.mode != "mix" && opt.mode != "images" || opt.n < 1 {
		fmt.Fprintln(os.Stderr, "loadgen: -mode must be mix or images, -n at least 1")
		os.Exit(2)
	}
	if *clients < 1 || *clients > 1000 || *duration <= 0 || *duration > 10*time.Minute {
		fmt.Fprintln(os.Stderr, "loadgen: -clients must be in [1, 1000] and -duration in (0, 10m]")
		os.Exit(2)
	}
	rep := run(*url, *clients, *duration, *pid, *hypernet)
	if *asJSON {
		_ = json.NewEncoder(os.Stdout).Encode(rep)
		return
	}
	fmt.Printf("%d clients, %.1f s: %d requests, %.1f req/s; latency p50 %.0f ms, p99 %.0f ms, max %.0f ms\n",
		rep.Clients, rep.Seconds, rep.Requests, rep.PerSecond, rep.P50ms, rep.P99ms, rep.MaxMs)
	fmt.Printf("generations answered 200: p50 %.0f ms, p99 %.0f ms; %d images, %.1f images/s\n", rep.OKP50ms, rep.OKP99ms, rep.Generated, rep.ImagesPerS)
	var keys []string
	for k := range rep.ByStatus {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("  status %s: %d\n", k, rep.ByStatus[k])
	}
	if rep.HWMMiB > 0 {
		fmt.Printf("server RSS: max %.0f MiB in the first half, %.0f MiB in the second; peak %.0f MiB\n", rep.RSSFirstMiB, rep.RSSLastMiB, rep.HWMMiB)
	}
}

// options are the flags that shape the requests.
var opt struct {
	key, mode, model string
	n                int
}

// request draws one request of the mix (or the image request of -mode images).
func request(r *rand.Rand, url string, hypernet bool) (*http.Request, bool) {
	prompts := []string{"t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"}
	p := prompts[r.IntN(len(prompts))]
	with := func(req *http.Request, key string) *http.Request {
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		return req
	}
	postTo := func(path, body string) *http.Request {
		req, _ := http.NewRequest("POST", url+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		return with(req, opt.key)
	}
	post := func(body string) *http.Request { return postTo("/v1/generate", body) }
	get := func(path string) *http.Request {
		req, _ := http.NewRequest("GET", url+path, nil)
		return with(req, opt.key)
	}
	if opt.mode == "images" {
		return postTo("/v1/images/generations", fmt.Sprintf(`{"prompt": %q, "model": %q, "n": %d, "seed": %d}`, p, opt.model, opt.n, r.IntN(1000))), true
	}
	x := r.Float64()
	switch {
	case x < 0.30:
		return post(fmt.Sprintf(`{"prompt": %q, "method": "base", "n": %d, "seed": %d}`, p, 1+r.IntN(4), r.IntN(1000))), true
	case x < 0.60:
		return postTo("/v1/images/generations", fmt.Sprintf(`{"prompt": %q, "model": "base", "n": %d, "seed": %d}`, p, 1+r.IntN(4), r.IntN(1000))), true
	case x < 0.70 && hypernet:
		return post(fmt.Sprintf(`{"prompt": %q, "method": "hypernoise", "n": 2, "seed": %d}`, p, r.IntN(1000))), true
	case x < 0.75:
		return post(fmt.Sprintf(`{"prompt": %q, "method": "best-of-n", "n": 1, "seed": %d}`, p, r.IntN(1000))), true
	case x < 0.80:
		if r.IntN(2) == 0 {
			return get("/v1/models"), false
		}
		return get("/healthz"), false
	}
	switch r.IntN(9) {
	case 0:
		return post(`{"prompt": "spaceship", "method": "base"}`), false
	case 1:
		return post(`{"prompt": "bag", "method": `), false
	case 2:
		return post(`{"prompt": "bag", "method": "base", "n": 100000}`), false
	case 3:
		return post(`{"prompt": "` + strings.Repeat("x", 100000) + `"}`), false
	case 4:
		return postTo("/v1/images/generations", `{"prompt": "bag", "model": "dall-e-3"}`), false
	case 5:
		if opt.key != "" {
			req := post(`{"prompt": "bag", "method": "base"}`)
			req.Header.Del("Authorization")
			return req, false
		}
	case 6:
		if opt.key != "" {
			return with(post(`{"prompt": "bag", "method": "base"}`), "wrong-key-0000"), false
		}
	case 7:
		if opt.key != "" {
			return get("/v1/models?api_key=" + opt.key), false
		}
	}
	return get("/v1/generate"), false
}

func run(url string, clients int, duration time.Duration, pid int, hypernet bool) Report {
	var mu sync.Mutex
	var results []result
	deadline := time.Now().Add(duration)
	start := time.Now()
	var rss [2]float64
	stop := make(chan struct{})
	var memWG sync.WaitGroup
	if pid > 0 {
		memWG.Add(1)
		go func() {
			defer memWG.Done()
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case now := <-t.C:
					half := 0
					if now.Sub(start) > duration/2 {
						half = 1
					}
					if v := procStatus(pid, "VmRSS"); v > rss[half] {
						rss[half] = v
					}
				}
			}
		}()
	}
	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(c), 42))
			for time.Now().Before(deadline) {
				req, gen := request(r, url, hypernet)
				t0 := time.Now()
				resp, err := client.Do(req)
				res := result{latency: time.Since(t0), gen: gen}
				if err == nil {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					res.latency = time.Since(t0)
					res.status = resp.StatusCode
					if gen && resp.StatusCode == 200 {
						res.images = bytes.Count(body, []byte(`"iVBOR`)) // a base64 PNG starts so
					}
					if resp.StatusCode == 429 {
						time.Sleep(50 * time.Millisecond) // a polite client backs off
					}
				}
				mu.Lock()
				results = append(results, res)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(stop)
	memWG.Wait()
	elapsed := time.Since(start).Seconds()
	rep := Report{Clients: clients, Seconds: elapsed, Requests: len(results), ByStatus: map[string]int{},
		PerSecond: float64(len(results)) / elapsed}
	var all, ok []float64
	for _, r := range results {
		key := "error"
		if r.status != 0 {
			key = strconv.Itoa(r.status)
		}
		rep.ByStatus[key]++
		ms := float64(r.latency.Microseconds()) / 1000
		all = append(all, ms)
		if r.gen && r.status == 200 {
			ok = append(ok, ms)
			rep.Generated += r.images
		}
	}
	rep.P50ms, rep.P99ms, rep.MaxMs = pct(all, 0.5), pct(all, 0.99), pct(all, 1)
	rep.OKP50ms, rep.OKP99ms = pct(ok, 0.5), pct(ok, 0.99)
	rep.ImagesPerS = float64(rep.Generated) / elapsed
	if pid > 0 {
		rep.RSSFirstMiB, rep.RSSLastMiB = rss[0]/1024, rss[1]/1024
		rep.HWMMiB = procStatus(pid, "VmHWM") / 1024
	}
	return rep
}

func pct(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// procStatus reads a "kB" field of /proc/pid/status (0 if unavailable).
func procStatus(pid int, field string) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			v, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return v
		}
	}
	return 0
}
