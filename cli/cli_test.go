package cli

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func testCommands() []Command {
	run := func(env *Env, args []string) error {
		fs := env.FlagSet("echo", "Usage: echo [--n N]")
		n := fs.Int("n", 1, "a positive count")
		if err := env.Parse(fs, args, false); err != nil {
			return err
		}
		if *n < 1 {
			return Usagef("echo: --n must be positive, got %d", *n)
		}
		if *n == 7 {
			return errors.New("seven is unlucky")
		}
		if *n == 13 {
			panic("boom\nwith a second line")
		}
		return nil
	}
	return []Command{{Name: "echo", Summary: "test", Run: run}}
}

func TestMainExitCodesAndMessages(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		code       int
		stderrHas  string
		stdoutHas  string
		stderrLine bool // stderr must be exactly one line
	}{
		{[]string{"echo"}, ExitOK, "", "", false},
		{[]string{"echo", "--help"}, ExitOK, "", "Usage: echo", false},
		{[]string{"echo", "--bogus"}, ExitUsage, "hypernoise echo: flag provided but not defined: -bogus", "", true},
		{[]string{"echo", "--n", "0"}, ExitUsage, "hypernoise echo: --n must be positive, got 0", "", true},
		{[]string{"echo", "extra"}, ExitUsage, `unexpected argument "extra"`, "", true},
		{[]string{"echo", "--n", "7"}, ExitFailure, "hypernoise echo: seven is unlucky", "", true},
		{[]string{"echo", "--n", "13"}, ExitFailure, "internal error: boom", "", true},
		{[]string{"nope"}, ExitUsage, `unknown command "nope"; commands: echo`, "", true},
		{[]string{}, ExitUsage, "Usage: hypernoise <command>", "", false},
		{[]string{"--help"}, ExitOK, "", "Commands:", false},
	} {
		var out, errb bytes.Buffer
		code := Main("hypernoise", "about", testCommands(), tc.args, &out, &errb)
		if code != tc.code {
			t.Errorf("%v: exit code %d, want %d (stderr %q)", tc.args, code, tc.code, errb.String())
		}
		if !strings.Contains(errb.String(), tc.stderrHas) {
			t.Errorf("%v: stderr %q lacks %q", tc.args, errb.String(), tc.stderrHas)
		}
		if !strings.Contains(out.String(), tc.stdoutHas) {
			t.Errorf("%v: stdout %q lacks %q", tc.args, out.String(), tc.stdoutHas)
		}
		if tc.stderrLine && strings.Count(strings.TrimRight(errb.String(), "\n"), "\n") != 0 {
			t.Errorf("%v: stderr is not one line: %q", tc.args, errb.String())
		}
	}
}

func TestBackendErrorIsUsage(t *testing.T) {
	_, err := Backend("tpu-please")
	var ue *UsageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "available") || strings.Contains(err.Error(), "\n") {
		t.Errorf("unknown backend: err = %v", err)
	}
}

// TestFlagRanges: a value outside a flag's range (NaN, huge, negative) is one usage line stating
// the range; the range is in the help text; RequireRanges names a numeric flag without one.
func TestFlagRanges(t *testing.T) {
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Main("hn", "about", []Command{{Name: "c", Run: func(env *Env, args []string) error {
			fs := env.FlagSet("c", "Usage: hn c")
			fs.Float64("guidance", 3, "guidance scale")
			fs.Int("terms", 8, "series terms")
			fs.Int("free", 1, "no range")
			env.Range(fs, "guidance", 0, 50)
			env.Range(fs, "terms", 1, 64)
			return env.Parse(fs, args, false)
		}}}, append([]string{"c"}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	for args, want := range map[string]string{
		"--guidance=-1e308": "--guidance must be in [0, 50], got -1e+308",
		"--guidance=NaN":    "--guidance must be in [0, 50], got NaN",
		"--terms=100000":    "--terms must be in [1, 64], got 100000",
		"--terms=0":         "--terms must be in [1, 64], got 0",
	} {
		if code, _, msg := run(args); code != ExitUsage || !strings.Contains(msg, want) {
			t.Errorf("%s: exit %d, %q; want exit 2 with %q", args, code, msg, want)
		}
	}
	if code, _, msg := run("--guidance=50", "--terms=64"); code != ExitOK {
		t.Errorf("at the range's ends: exit %d %s", code, msg)
	}
	if _, help, _ := run("--help"); !strings.Contains(help, "(range [0, 50])") {
		t.Errorf("help lacks the range:\n%s", help)
	}
	RequireRanges = true
	defer func() { RequireRanges = false }()
	if code, _, msg := run("--help"); code == ExitOK || !strings.Contains(msg, "--free") {
		t.Errorf("RequireRanges: exit %d, %q", code, msg)
	}
}

// TestWriteJSONNulls: a report with a NaN figure is written whole, the figure as null, and a note
// on stderr names it.
func TestWriteJSONNulls(t *testing.T) {
	var out, errb bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errb}
	rep := map[string]any{"methods": []map[string]float64{{"reward": 0.5}, {"reward": math.NaN()}}}
	if err := env.WriteJSON(rep); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"reward": null`) || !strings.Contains(errb.String(), "methods[1].reward") {
		t.Errorf("stdout %s, stderr %s", out.String(), errb.String())
	}
}

// TestCPUProfile: HYPERNOISE_CPUPROFILE writes Go's CPU profile (gzip-compressed pprof) of the
// command; a path that cannot be created is one line and exit code 2, before the command runs.
func TestCPUProfile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cpu.prof")
	t.Setenv("HYPERNOISE_CPUPROFILE", path)
	var out, errb bytes.Buffer
	if code := Main("hypernoise", "about", testCommands(), []string{"echo"}, &out, &errb); code != ExitOK {
		t.Fatalf("exit code %d, stderr %q", code, errb.String())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("the profile (%d bytes) is not gzip-compressed pprof data", len(b))
	}
	// a panicking command still stops the profiler: the next command can profile again
	if code := Main("hypernoise", "about", testCommands(), []string{"echo", "--n", "13"}, &out, &errb); code != ExitFailure {
		t.Fatalf("panicking command: exit code %d, want %d", code, ExitFailure)
	}
	if code := Main("hypernoise", "about", testCommands(), []string{"echo"}, &out, &errb); code != ExitOK {
		t.Fatalf("after a panic: exit code %d, stderr %q; the profiler was left running", code, errb.String())
	}
	t.Setenv("HYPERNOISE_CPUPROFILE", filepath.Join(dir, "missing", "cpu.prof"))
	errb.Reset()
	code := Main("hypernoise", "about", testCommands(), []string{"echo", "--n", "7"}, &out, &errb)
	msg := strings.TrimRight(errb.String(), "\n")
	if code != ExitUsage || !strings.Contains(msg, "HYPERNOISE_CPUPROFILE") || strings.Contains(msg, "\n") || strings.Contains(msg, "unlucky") {
		t.Errorf("bad profile path: exit code %d, stderr %q; want 2 and one line naming the variable, before the command runs", code, msg)
	}
}

// TestCPUProfileInterrupted: Ctrl-C exits the process at once, and the profile is complete on disk
// before it does (the exit is stubbed here).
func TestCPUProfileInterrupted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.prof")
	t.Setenv(EnvCPUProfile, path)
	release := make(chan struct{})
	var exitCode int
	var atExit []byte
	saved := exitProcess
	exitProcess = func(code int) {
		exitCode = code
		atExit, _ = os.ReadFile(path)
		close(release)
	}
	defer func() { exitProcess = saved }()
	wait := Command{Name: "wait", Summary: "test", Run: func(env *Env, args []string) error {
		if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
			return err
		}
		<-release
		return nil
	}}
	var out, errb bytes.Buffer
	Main("hypernoise", "about", []Command{wait}, []string{"wait"}, &out, &errb)
	if exitCode != ExitInterrupted {
		t.Fatalf("exit code %d, want %d (stderr %q)", exitCode, ExitInterrupted, errb.String())
	}
	if len(atExit) < 2 || atExit[0] != 0x1f || atExit[1] != 0x8b {
		t.Fatalf("at exit the profile held %d bytes, not a finished gzip-compressed pprof file", len(atExit))
	}
}
