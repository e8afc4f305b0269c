package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hypernoise/hypernoise/cli"
)

// The hostile-input suite (issue 21): what a new user or a hostile one might pass, each case with
// its expected exit code and message. The cheap cases run here, in-process (cli.Main); the rest
// (kills, interrupts, training, the demo, FIFOs behind a running command) are in scripts/hostile.sh.
// Placeholders in args: {tmp} is the case's own empty folder, {h} the hostile fixtures
// (testdata/hostile, made by make_hostile.py there).

// hostileCase is one case: the command line, an optional setup of {tmp}, the expected exit code,
// a regular expression the message (stderr, or stdout for exit 0) must match, and an optional
// check of what the command left behind.
type hostileCase struct {
	class string
	args  []string
	setup func(t *testing.T, tmp string)
	code  int
	want  string
	check func(t *testing.T, tmp string)
}

// Classes of the suite (the issue's).
const (
	classNonFinite = "non-finite"
	classRange     = "range"
	classPrompts   = "prompts"
	classFiles     = "input files"
	classOutputs   = "outputs"
	classMessages  = "messages"
)

// hostileTimeout is how long a case may run before it counts as a hang.
const hostileTimeout = 60 * time.Second

// unblockFIFOs opens every FIFO under dir for writing and closes it, which releases a reader
// blocked on it.
func unblockFIFOs(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type()&os.ModeNamedPipe != 0 {
			if f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				f.Close()
			}
		}
		return nil
	})
}

var stackTraceRE = regexp.MustCompile(`goroutine \d+ \[|\.go:\d+|^panic:`)

// runHostile runs one case and reports its failures; it returns whether it passed.
func runHostile(t *testing.T, c hostileCase) bool {
	t.Helper()
	tmp := t.TempDir()
	hostile, _ := filepath.Abs(filepath.Join("testdata", "hostile"))
	if c.setup != nil {
		c.setup(t, tmp)
	}
	args := make([]string, len(c.args))
	for i, a := range c.args {
		args[i] = strings.ReplaceAll(strings.ReplaceAll(a, "{tmp}", tmp), "{h}", hostile)
	}
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- cli.Main("hypernoise", about, commands, args, &stdout, &stderr) }()
	var code int
	select {
	case code = <-done:
	case <-time.After(hostileTimeout):
		unblockFIFOs(tmp) // let the stuck command go, then report the hang
		<-done
		t.Errorf("[%s] %s: hung for more than %s", c.class, shortArgs(c.args), hostileTimeout)
		return false
	}
	msg := stderr.String()
	if code == 0 {
		msg = stdout.String() + stderr.String()
	}
	ok := true
	fail := func(format string, a ...any) {
		ok = false
		t.Errorf("[%s] %s: %s (exit %d, stderr %s)", c.class, shortArgs(c.args), fmt.Sprintf(format, a...), code, shortText(stderr.String()))
	}
	switch {
	case code != c.code:
		fail("exit code %d, want %d", code, c.code)
	case !regexp.MustCompile(c.want).MatchString(msg):
		fail("message does not match %q", c.want)
	case stackTraceRE.MatchString(msg):
		fail("stack trace")
	case code != 0 && strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0:
		fail("more than one line on stderr")
	case len(stderr.String()) > cli.MaxMessage+200:
		fail("a %d-byte message", len(stderr.String()))
	}
	if c.check != nil && ok {
		c.check(t, tmp)
	}
	return ok
}

func shortArgs(args []string) string {
	s := strings.Join(args, " ")
	if len(s) > 160 {
		return s[:160] + "..."
	}
	return s
}

func shortText(s string) string {
	if len(s) > 300 {
		return fmt.Sprintf("%q...", s[:300])
	}
	return fmt.Sprintf("%q", s)
}

// writeFile writes data under tmp and fails the test on error.
func writeFile(t *testing.T, path string, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Skip("no FIFOs here:", err)
	}
}

func symlink(t *testing.T, target, path string) {
	t.Helper()
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

// specWith writes tmp/spec.json: the fixture spec with the given JSON fields replaced (a field
// value is raw JSON) and the ONNX paths absolute to the hostile fixtures.
func specWith(fields map[string]string, gen map[string]string) func(t *testing.T, tmp string) {
	return func(t *testing.T, tmp string) {
		h, _ := filepath.Abs(filepath.Join("testdata", "hostile"))
		g := map[string]string{"onnx": fmt.Sprintf("%q", filepath.Join(h, "gen.onnx")), "noise_input": `"noise"`,
			"noise_shape": "[4, 8, 8]", "prompt_input": `"prompt"`, "output": `"image"`, "backbone_output": `"latent"`}
		for k, v := range gen {
			g[k] = v
		}
		s := map[string]string{"name": `"hostile"`, "prompts": `["circle", "square", "stripes"]`,
			"rewards": fmt.Sprintf(`{"score": {"onnx": %q, "image_input": "image", "prompt_input": "prompt", "output": "score"}}`, filepath.Join(h, "reward.onnx"))}
		for k, v := range fields {
			s[k] = v
		}
		var gp, sp []string
		for k, v := range g {
			if v != "" {
				gp = append(gp, fmt.Sprintf("%q: %s", k, v))
			}
		}
		for k, v := range s {
			sp = append(sp, fmt.Sprintf("%q: %s", k, v))
		}
		sp = append(sp, `"generator": {`+strings.Join(gp, ", ")+`}`)
		writeFile(t, filepath.Join(tmp, "spec.json"), "{"+strings.Join(sp, ", ")+"}")
	}
}

func manyPrompts(n int) string {
	p := make([]string, n)
	for i := range p {
		p[i] = fmt.Sprintf("%q", fmt.Sprintf("p%d", i))
	}
	return "[" + strings.Join(p, ",") + "]"
}

// stillDevice checks that /dev/null is still a character device.
func stillDevice(t *testing.T, _ string) {
	if st, err := os.Stat("/dev/null"); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		t.Errorf("/dev/null is no longer a character device")
	}
}

// stillLink checks that tmp/out.png is still a symbolic link.
func stillLink(t *testing.T, tmp string) {
	if st, err := os.Lstat(filepath.Join(tmp, "out.png")); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link %s was replaced", filepath.Join(tmp, "out.png"))
	}
}

// emptyFolder checks that the command left nothing in tmp.
func emptyFolder(t *testing.T, tmp string) {
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("%d entries left behind in %s, e.g. %s", len(entries), tmp, entries[0].Name())
	}
}

// noFile checks that tmp/name does not exist.
func noFile(name string) func(t *testing.T, tmp string) {
	return func(t *testing.T, tmp string) {
		if _, err := os.Stat(filepath.Join(tmp, name)); err == nil {
			t.Errorf("%s was written", name)
		}
	}
}

// hostileCases are the in-process cases; hostileModelCases run imported fixture models.
func hostileCases() []hostileCase {
	sample := func(args ...string) []string {
		return append([]string{"sample", "--prompt", "dress", "--n", "1"}, args...)
	}
	spec := func(args ...string) []string {
		return append([]string{"sample", "--model", "{tmp}/spec.json", "--prompt", "circle", "--n", "1", "--out", "{tmp}/o.png"}, args...)
	}
	long := strings.Repeat("x", 100_000)
	return []hostileCase{
		// Input files: regular files only, capped, never blocking.
		{classFiles, []string{"sample", "--model", "{tmp}/fifo.json", "--prompt", "circle"}, func(t *testing.T, tmp string) { mkfifo(t, filepath.Join(tmp, "fifo.json")) }, 2, "FIFO", nil},
		{classFiles, []string{"sample", "--model", "{tmp}/zero.json", "--prompt", "circle"}, func(t *testing.T, tmp string) { symlink(t, "/dev/zero", filepath.Join(tmp, "zero.json")) }, 2, "character device", nil},
		{classFiles, []string{"sample", "--model", "{tmp}/d.json", "--prompt", "circle"}, func(t *testing.T, tmp string) { _ = os.Mkdir(filepath.Join(tmp, "d.json"), 0o755) }, 2, "folder", nil},
		{classFiles, []string{"sample", "--model", "/dev/zero", "--prompt", "circle"}, nil, 2, "unknown model", nil},
		{classFiles, []string{"sample", "--model", "{tmp}/big.json", "--prompt", "circle"}, func(t *testing.T, tmp string) {
			f, _ := os.Create(filepath.Join(tmp, "big.json"))
			_ = f.Truncate(17 << 20)
			f.Close()
		}, 2, "more than a JSON file may be", nil},
		{classFiles, spec(), func(t *testing.T, tmp string) {
			mkfifo(t, filepath.Join(tmp, "g.onnx"))
			specWith(nil, map[string]string{"onnx": `"g.onnx"`})(t, tmp)
		}, 2, "g.onnx is a FIFO", nil},
		{classFiles, spec(), specWith(nil, map[string]string{"onnx": `"/dev/zero"`}), 2, "/dev/zero is a character device", nil},
		{classFiles, spec(), specWith(nil, map[string]string{"onnx": `"/"`}), 2, "is a folder", nil},
		{classFiles, spec(), specWith(nil, map[string]string{"onnx": `"/nonexistent-hn/gen.onnx"`}), 1, `^hypernoise sample: /nonexistent-hn/gen.onnx: no such file`, nil},
		{classFiles, spec(), specWith(map[string]string{"rewards": `{"score": {"onnx": "/dev/null", "image_input": "image", "output": "score"}}`}, nil), 2, "/dev/null is a character device", nil},
		{classFiles, spec(), func(t *testing.T, tmp string) {
			mkfifo(t, filepath.Join(tmp, "r.onnx"))
			specWith(map[string]string{"rewards": `{"score": {"onnx": "r.onnx", "image_input": "image", "output": "score"}}`}, nil)(t, tmp)
		}, 2, "r.onnx is a FIFO", nil},
		{classFiles, spec(), func(t *testing.T, tmp string) { writeFile(t, filepath.Join(tmp, "spec.json"), "{\"name\": \"x\"") }, 2, "truncated", nil},
		{classFiles, spec(), func(t *testing.T, tmp string) { writeFile(t, filepath.Join(tmp, "spec.json"), "\x00\xff\xfe garbage") }, 2, "invalid JSON", nil},
		{classFiles, sample("--hypernet", "{tmp}/hn", "--out", "{tmp}/o.png"), func(t *testing.T, tmp string) {
			mkfifo(t, filepath.Join(tmp, "hn", "hypernet.json"))
		}, 2, "hypernet.json is a FIFO", nil},
		{classFiles, sample("--hypernet", "{tmp}/hn", "--out", "{tmp}/o.png"), func(t *testing.T, tmp string) {
			_ = os.MkdirAll(filepath.Join(tmp, "hn"), 0o755)
			symlink(t, "/dev/zero", filepath.Join(tmp, "hn", "hypernet.json"))
		}, 2, "character device", nil},

		// Outputs: replaced only when new or a regular file; never a device, a FIFO, a folder or a
		// link to one; a path too long is refused before any folder is made.
		{classOutputs, sample("--out", "/dev/null"), nil, 2, "/dev/null is a character device; refusing to replace it", stillDevice},
		{classOutputs, sample("--out", "{tmp}/out.png"), func(t *testing.T, tmp string) { symlink(t, "/dev/null", filepath.Join(tmp, "out.png")) }, 2, "links to /dev/null, which is a character device", func(t *testing.T, tmp string) { stillDevice(t, tmp); stillLink(t, tmp) }},
		{classOutputs, sample("--out", "{tmp}/out.png"), func(t *testing.T, tmp string) { symlink(t, "/proc/self/fd/1", filepath.Join(tmp, "out.png")) }, 2, "refusing to replace it", stillLink},
		{classOutputs, sample("--out", "{tmp}/out.png"), func(t *testing.T, tmp string) { mkfifo(t, filepath.Join(tmp, "out.png")) }, 2, "FIFO", nil},
		{classOutputs, sample("--out", "{tmp}"), nil, 2, "is a folder", nil},
		{classOutputs, sample("--out", "{tmp}/"+strings.Repeat("d/", 2100)+"o.png"), nil, 2, "more than the file system allows", emptyFolder},
		{classOutputs, sample("--out", "{tmp}/a/"+strings.Repeat("n", 300)+".png"), nil, 2, "more than the file system allows", emptyFolder},
		{classOutputs, sample("--out", "{tmp}/a/"+strings.Repeat("n", 246)+".png"), nil, 2, "would exceed the file system", emptyFolder},
		{classOutputs, sample("--out", ""), nil, 2, "must not be empty", nil},
		{classOutputs, sample("--out", "{tmp}/out.png"), func(t *testing.T, tmp string) {
			writeFile(t, filepath.Join(tmp, "real.png"), "old")
			symlink(t, "real.png", filepath.Join(tmp, "out.png"))
		}, 0, "wrote", func(t *testing.T, tmp string) {
			stillLink(t, tmp)
			if b, _ := os.ReadFile(filepath.Join(tmp, "real.png")); !bytes.HasPrefix(b, []byte("\x89PNG")) {
				t.Errorf("the link's target was not replaced by the PNG")
			}
		}},
		{classOutputs, sample("--out", "{tmp}/out.png"), func(t *testing.T, tmp string) { symlink(t, "sub/new.png", filepath.Join(tmp, "out.png")) }, 0, "wrote", func(t *testing.T, tmp string) {
			stillLink(t, tmp)
			if _, err := os.Stat(filepath.Join(tmp, "sub", "new.png")); err != nil {
				t.Errorf("a dangling link's target was not created: %v", err)
			}
		}},

		// Prompts in a spec.
		{classPrompts, spec(), specWith(map[string]string{"prompts": `["circle", "Circle", "x"]`}, nil), 2, `"Circle" is the same prompt as prompts\[0\]`, nil},
		{classPrompts, spec(), specWith(map[string]string{"prompts": `["circle", " SQUARE ", "square"]`}, nil), 2, "same prompt as prompts", nil},
		{classPrompts, spec(), specWith(map[string]string{"prompts": `["circle", "all", "x"]`}, nil), 2, `"all" is reserved`, nil},
		{classPrompts, spec(), specWith(map[string]string{"prompts": `["ALL", "b", "c"]`}, nil), 2, "is reserved", nil},
		{classPrompts, spec(), specWith(map[string]string{"prompts": `["circle", "square", "stripes", "dots"]`}, nil), 2, `lists 4 prompts, but \S*gen.onnx's input "prompt" indexes a table of 3 rows`, nil},
		{classPrompts, spec(), specWith(map[string]string{"prompts": manyPrompts(100_000)}, nil), 2, "lists 100000 prompts; at most 65536", nil},
		{classPrompts, spec(), specWith(map[string]string{"prompts": manyPrompts(60_000)}, nil), 2, "lists 60000 prompts, but", nil},
		{classPrompts, spec(), specWith(map[string]string{"prompts": `["circle", "", "x"]`}, nil), 2, "empty prompt", nil},
		{classPrompts, sample("--prompt", long, "--out", "{tmp}/o.png"), nil, 2, `unknown prompt "x{10,}"\.\.\. \(\d+ more bytes\)`, nil},
		{classPrompts, sample("--prompt", "   ", "--out", "{tmp}/o.png"), nil, 2, "unknown prompt", nil},
		{classPrompts, sample("--prompt", "DRESS", "--out", "{tmp}/o.png"), nil, 0, "wrote", nil},

		// Numeric spec fields outside their ranges.
		{classRange, spec(), specWith(nil, map[string]string{"range": "[-1e308, 1e308]"}), 2, `"generator.range": must be \[lo, hi\] with -1e\+06`, nil},
		{classRange, spec(), specWith(nil, map[string]string{"range": "[0, 1e-12]"}), 2, "hi - lo >= 1e-06", nil},
		{classRange, spec(), specWith(nil, map[string]string{"range": "[1, 0]"}), 2, "generator.range", nil},
		{classRange, spec(), specWith(nil, map[string]string{"range": "[0, 1, 2]"}), 2, "generator.range", nil},
		{classRange, spec(), specWith(nil, map[string]string{"noise_shape": "[3, 1000000, 1000]"}), 2, "more than 67108864 values per sample", nil},
		{classRange, spec(), specWith(nil, map[string]string{"noise_shape": "[4, 8, 8, 1, 1, 1, 1, 1, 1]"}), 2, "at most 8 are supported", nil},
		{classRange, spec(), specWith(nil, map[string]string{"noise_shape": "[4, -8, 8]"}), 2, `each dimension must be in \[1, 1048576\]`, nil},
		{classRange, spec(), specWith(nil, map[string]string{"noise_shape": "[4, 1e300, 8]"}), 2, "noise_shape", nil},

		// Messages.
		{classMessages, []string{"sample", long}, nil, 2, `unexpected argument "x+"\.\.\. \(\d+ more bytes\)`, nil},
		{classMessages, []string{"sample", "--" + long}, nil, 2, "left out", nil},
		{classMessages, []string{long}, nil, 2, "unknown command", nil},
	}
}

// rangeCases: a value outside a numeric flag's documented range, on every command, is one usage
// line stating the range (issue 21's "finite but absurd values").
func rangeCases() []hostileCase {
	var out []hostileCase
	add := func(prefix []string, flag string, values ...string) {
		for _, v := range values {
			args := append(append([]string{}, prefix...), "--"+flag+"="+v)
			out = append(out, hostileCase{classRange, args, nil, 2, `--` + regexp.QuoteMeta(flag) + ` must be in \[[-0-9.e+]+, [-0-9.e+]+\], got`, nil})
		}
	}
	sample := []string{"sample", "--prompt", "dress", "--out", "{tmp}/o.png"}
	add(sample, "n", "0", "-1", "5000")
	add(sample, "scale", "0", "17")
	add(append(sample, "--teacher-steps", "4"), "guidance", "-1e308", "1e308", "NaN", "Inf", "-0.5")
	add(sample, "teacher-steps", "-1", "1001")
	add(sample, "seed", "-1", "9007199254740993")
	add(append(sample, "--method", "best-of-n"), "best-of", "-1", "100000")
	add(append(sample, "--method", "reno"), "reno-steps", "-5", "1001")
	add(sample, "cols", "-1", "99999999")
	add(sample, "beta", "-1", "0", "1e300")
	train := []string{"train", "--out", "{tmp}/run"}
	add(append(train, "--reg", "logdet"), "terms", "100000", "0")
	add(append(train, "--reg", "logdet"), "probes", "0", "1000")
	add(train, "steps", "0", "-1", "300000")
	add(train, "batch", "0", "8192")
	add(train, "lr", "0", "-1", "11", "NaN")
	add(train, "warmup", "-1")
	add(train, "clip", "-1", "Inf")
	add(train, "rank", "0", "513")
	add(append(train, "--modulator", "mlp"), "hidden", "0")
	add(append(train, "--modulator", "mlp"), "layers", "0", "17")
	add(train, "alpha", "-1", "1e300")
	add(train, "reg-weight", "-1")
	add(train, "beta", "-1", "1e300")
	add(train, "seed", "-5")
	add(train, "checkpoint-every", "-1")
	eval := []string{"eval", "--hypernet", "{tmp}/none"}
	add(eval, "seeds", "1", "100000")
	add(eval, "reno-steps", "0")
	add(eval, "warm-steps", "-1")
	add(eval, "small-n", "0")
	add(eval, "finetune-steps", "-2")
	add(eval, "beta", "0")
	add([]string{"tilt"}, "pool", "0", "1000000")
	add([]string{"tilt"}, "seeds", "0")
	add([]string{"toy"}, "beta", "0", "1e308")
	add([]string{"toy"}, "rank", "0")
	add([]string{"toy"}, "samples", "-1")
	add([]string{"toy"}, "terms", "100000")
	add([]string{"toy"}, "batch", "0")
	add([]string{"toy"}, "best-of", "0")
	add([]string{"serve"}, "max-n", "0", "100000")
	add([]string{"serve"}, "max-body", "1")
	add([]string{"serve"}, "timeout", "0s", "100h")
	add([]string{"serve"}, "concurrency", "0")
	add([]string{"serve"}, "queue", "-1")
	add([]string{"bench"}, "steps", "0")
	add([]string{"doctor"}, "matmul-size", "0", "100000")
	add([]string{"demo", "--out", "{tmp}/demo"}, "seed", "-1")
	add([]string{"compositional", "--out", "{tmp}/c"}, "seed", "-1")
	add([]string{"zoo", "train", "student"}, "steps", "-1")
	return out
}

// phase2Cases: standard output, unconditional models, the demo's folder flags.
func phase2Cases() []hostileCase {
	fx, _ := filepath.Abs(filepath.Join("..", "..", "models", "onnx", "testdata"))
	uncond := filepath.Join(fx, "spec_uncond.json")
	noDash := func(t *testing.T, tmp string) {
		if _, err := os.Stat("-"); err == nil {
			t.Errorf("a file named - was written")
		}
	}
	return []hostileCase{
		{classOutputs, []string{"sample", "--prompt", "dress", "--n", "1", "--out", "-"}, nil, 0, "PNG\r\n(.|\n)*wrote -:", noDash},
		{classOutputs, []string{"sample", "--model", uncond, "--n", "1", "--out", "-"}, nil, 0, "PNG\r\n", noDash},
		{classOutputs, []string{"eval", "--hypernet", "{tmp}/none", "--out", "/dev/null"}, nil, 1, "not a directory", nil},
		{classOutputs, []string{"demo", "--out", "/dev/null"}, nil, 1, "not a directory", nil},
		{classPrompts, []string{"sample", "--model", uncond, "--prompt", "circle", "--n", "1", "--out", "{tmp}/o.png"}, nil, 2, "is unconditional .*leave --prompt out", noFile("o.png")},
		{classPrompts, []string{"sample", "--model", uncond, "--prompt", strings.Repeat("p", 50_000), "--n", "1", "--out", "{tmp}/o.png"}, nil, 2, "is unconditional", nil},
		{classPrompts, []string{"sample", "--model", uncond, "--prompt", "all", "--n", "1", "--out", "{tmp}/o.png"}, nil, 0, "wrote", nil},
		{classMessages, []string{"demo", "--resume", "--force", "--out", "{tmp}/d"}, nil, 2, "exclude each other", nil},
		{classMessages, []string{"train", "--resume", "--out", "{tmp}/d"}, nil, 2, "holds no checkpoint", nil},
	}
}

// TestHostileInputs runs the in-process hostile cases.
func TestHostileInputs(t *testing.T) {
	t.Setenv(cli.EnvMemBudget, "16GiB")
	passed, total := 0, 0
	cases := append(append(hostileCases(), hostileModelCases()...), rangeCases()...)
	for _, c := range append(cases, phase2Cases()...) {
		total++
		if runHostile(t, c) {
			passed++
		}
	}
	t.Logf("hostile cases: %d of %d passed", passed, total)
}

// hostileModelCases run the hostile ONNX fixtures (small batches: a few seconds in all).
func hostileModelCases() []hostileCase {
	model := func(spec string, args ...string) []string {
		return append([]string{"sample", "--model", "{h}/spec_" + spec + ".json", "--prompt", "circle", "--n", "2", "--out", "{tmp}/o.png"}, args...)
	}
	return []hostileCase{
		{classNonFinite, model("gen_nan"), nil, 1, `generator "hostile-gen-nan" \(gen_nan.onnx, output "image"\) returned \d+ non-finite`, noFile("o.png")},
		{classNonFinite, model("gen_nan", "--method", "best-of-n", "--best-of", "2"), nil, 1, `best-of-N: the generator .*gen_nan.onnx`, noFile("o.png")},
		{classNonFinite, model("reward_nan", "--method", "best-of-n", "--best-of", "2"), nil, 1, `reward_nan.onnx, output "score"\) returned 4 non-finite value\(s\) \(first: NaN\).*no candidate with a finite reward`, noFile("o.png")},
		{classNonFinite, model("reward_inf", "--method", "best-of-n", "--best-of", "2"), nil, 1, `reward_inf.onnx.*first: \+Inf`, noFile("o.png")},
		{classNonFinite, model("reward_big", "--method", "best-of-n", "--best-of", "2"), nil, 1, `reward_big.onnx.*first: \+Inf`, noFile("o.png")},
		{classNonFinite, model("reward_nan", "--method", "reno", "--reno-steps", "2"), nil, 1, `ReNO: the reward .*reward_nan.onnx.*no iterate with a finite reward`, noFile("o.png")},
		{classNonFinite, model("reward_big", "--method", "reno", "--reno-steps", "2"), nil, 1, `ReNO: the reward .*reward_big.onnx`, noFile("o.png")},
		{classNonFinite, model("reward_nan", "--method", "base"), nil, 0, "wrote", nil}, // base sampling does not use the reward
		// A run whose every step is skipped writes no hypernetwork and leaves no folder behind.
		{classNonFinite, []string{"train", "--model", "{h}/spec_reward_nan.json", "--steps", "3", "--batch", "2", "--out", "{tmp}/hn", "--quiet"}, nil, 1, `no hypernetwork was written`, noFile("hn")},
	}
}

// TestEvalFinetuneNonFiniteReward: eval's fine-tune baseline against a reward that returns NaN (the
// generator the hypernetwork was trained on, a broken reward file in its place) fails with one line
// that names the reward's file and says that nothing was written, exit 1.
func TestEvalFinetuneNonFiniteReward(t *testing.T) {
	hostile := filepath.Join("testdata", "hostile")
	dir := t.TempDir()
	for _, f := range []string{"gen.onnx", "reward.onnx", "reward_nan.onnx"} {
		data, err := os.ReadFile(filepath.Join(hostile, f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, f), string(data))
	}
	spec, err := os.ReadFile(filepath.Join(hostile, "spec_ok.json"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "ok.json"), string(spec))
	writeFile(t, filepath.Join(dir, "nan.json"), strings.Replace(string(spec), `"reward.onnx"`, `"reward_nan.onnx"`, 1))
	hn := filepath.Join(dir, "hn")
	if code, _, msg := run("train", "--model", filepath.Join(dir, "ok.json"), "--steps", "2", "--batch", "2", "--out", hn, "--quiet"); code != 0 {
		t.Fatalf("train: exit %d: %s", code, msg)
	}
	code, _, msg := run("eval", "--model", filepath.Join(dir, "nan.json"), "--hypernet", hn, "--seeds", "2",
		"--methods", "finetune", "--finetune-steps", "2", "--quiet", "--out", filepath.Join(dir, "ev"))
	if code != 1 || !strings.Contains(msg, "reward_nan.onnx") || !strings.Contains(msg, "no weights were written") || strings.Count(strings.TrimSpace(msg), "\n") != 0 {
		t.Errorf("exit %d, stderr %q; want exit 1 and one line naming reward_nan.onnx", code, msg)
	}
}
