// Package cli is the plumbing shared by the hypernoise subcommands: flag parsing with one-line
// usage errors (exit code 2), run-time failures as one clear message (exit code 1), panics turned
// into errors instead of stack traces, backend selection and JSON output.
package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"

	"github.com/gomlx/gomlx/backends"
	"github.com/hypernoise/hypernoise/compute"
	"github.com/hypernoise/hypernoise/internal/finitejson"
	"github.com/hypernoise/hypernoise/internal/safeio"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1 // the command failed at run time
	ExitUsage   = 2 // bad flag, unknown name, out-of-range value
)

// UsageError is a mistake in how the command was called; it exits with code 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Usagef returns a UsageError with a formatted message.
func Usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// Command is one subcommand.
type Command struct {
	Name    string
	Summary string // one line for the command list
	// Run parses args (the arguments after the subcommand name) and does the work.
	Run func(env *Env, args []string) error
}

// Env is what a command gets: its output streams.
type Env struct {
	Stdout, Stderr io.Writer
	usages         map[*flag.FlagSet]func()

	ranges map[*flag.FlagSet]map[string]Range // see Range

	intMu     sync.Mutex
	onInt     func() string // see OnInterrupt
	stopCatch func()        // see HandleSignals
}

// FlagSet returns a flag set for a subcommand that reports errors instead of exiting. usage is
// printed for -h/--help, followed by the flag defaults.
func (env *Env) FlagSet(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	// The flag package calls fs.Usage on -h and on every parse error; the full text is printed
	// only for -h/--help (by Parse), so a usage error stays one line.
	fs.Usage = func() {}
	if env.usages == nil {
		env.usages = map[*flag.FlagSet]func(){}
	}
	env.usages[fs] = func() {
		fmt.Fprintf(env.Stdout, "%s\n\nFlags:\n", strings.TrimSpace(usage))
		fs.SetOutput(env.Stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// errHelp means help was printed; the command exits 0.
var errHelp = errors.New("help shown")

// Parse parses args into fs. -h/--help prints the usage and stops the command with exit code 0;
// a bad flag is a UsageError. Positional arguments are refused unless allowArgs.
func (env *Env) Parse(fs *flag.FlagSet, args []string, allowArgs bool) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			if show := env.usages[fs]; show != nil {
				show()
			}
			if err := env.missingRanges(fs); err != nil {
				return err
			}
			return errHelp
		}
		return Usagef("%v (see hypernoise %s --help)", err, fs.Name())
	}
	if !allowArgs && fs.NArg() > 0 {
		return Usagef("unexpected argument %s (see hypernoise %s --help)", safeio.Shorten(fs.Arg(0), 80), fs.Name())
	}
	return env.checkRanges(fs)
}

// BackendFlag registers --backend on fs; call Backend after parsing. The list offered is
// OfferedBackends.
func BackendFlag(fs *flag.FlagSet) *string {
	return fs.String("backend", "", "compute backend: "+strings.Join(OfferedBackends(), ", ")+
		" (default: $HYPERNOISE_BACKEND, else $GOMLX_BACKEND, else go)")
}

// OfferedBackends are the backends the commands accept: compute.Available without go-stock, the
// unpatched SimpleGo kept for compute benchmarks, which cannot run the commands' graphs (it lacks
// the Pad and Reverse operations their gradients and convolutions need).
func OfferedBackends() []string {
	var out []string
	for _, n := range compute.Available() {
		if n != compute.StockName {
			out = append(out, n)
		}
	}
	return out
}

// Backend starts the named backend (or the one the environment names); a failure is a usage error
// (exit 2) with one clear line. go-stock is refused (see OfferedBackends).
func Backend(name string) (backends.Backend, error) {
	effective, source := name, ""
	if effective == "" {
		if v := strings.TrimSpace(os.Getenv(compute.EnvBackend)); v != "" {
			effective, source = v, " (from $"+compute.EnvBackend+")"
		} else if v := strings.TrimSpace(os.Getenv(compute.EnvGoMLXBackend)); v != "" {
			effective, source = v, " (from $"+compute.EnvGoMLXBackend+")"
		}
	}
	if base, _, _ := strings.Cut(effective, ":"); base == compute.StockName {
		return nil, Usagef("backend %q%s is the unpatched SimpleGo, kept for compute benchmarks only: it cannot run "+
			"hypernoise's training and sampling graphs (no Pad/Reverse operations); use one of: %s",
			compute.StockName, source, strings.Join(OfferedBackends(), ", "))
	}
	b, err := compute.NewBackend(name)
	if err != nil {
		return nil, &UsageError{Msg: err.Error()}
	}
	return b, nil
}

// WriteJSON prints v as indented JSON, a non-finite number (NaN, ±Inf) as null (see finitejson).
func WriteJSON(w io.Writer, v any) error {
	_, err := writeJSON(w, v)
	return err
}

// WriteJSON prints v as indented JSON on the command's standard output; non-finite numbers are
// written as null, and a line on standard error says which.
func (env *Env) WriteJSON(v any) error {
	nulls, err := writeJSON(env.Stdout, v)
	if note := finitejson.Note(nulls); note != "" {
		fmt.Fprintf(env.Stderr, "note: %s\n", note)
	}
	return err
}

func writeJSON(w io.Writer, v any) ([]string, error) {
	tree, nulls, err := finitejson.Sanitize(v)
	if err != nil {
		return nil, err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return nulls, enc.Encode(tree)
}

// Main runs the subcommand named by args[0] and returns the process exit code.
func Main(name, about string, commands []Command, args []string, stdout, stderr io.Writer) (code int) {
	env := &Env{Stdout: stdout, Stderr: stderr}
	sort.Slice(commands, func(i, j int) bool { return commands[i].Name < commands[j].Name })
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "%s\n\nUsage: %s <command> [flags]\n\nCommands:\n", about, name)
		for _, c := range commands {
			fmt.Fprintf(w, "  %-10s %s\n", c.Name, c.Summary)
		}
		fmt.Fprintf(w, "\nRun '%s <command> --help' for a command's flags.\n", name)
	}
	if len(args) == 0 {
		usage(stderr)
		return ExitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return ExitOK
	}
	var cmd *Command
	for i := range commands {
		if commands[i].Name == args[0] {
			cmd = &commands[i]
		}
	}
	if cmd == nil {
		names := make([]string, len(commands))
		for i, c := range commands {
			names[i] = c.Name
		}
		fmt.Fprintf(stderr, "%s: unknown command %s; commands: %s\n", name, safeio.Shorten(args[0], 80), strings.Join(names, ", "))
		return ExitUsage
	}
	restore := limitRuntime()
	defer restore()
	stopProfile, perr := startCPUProfile(os.Getenv(EnvCPUProfile))
	if perr != nil {
		fmt.Fprintf(stderr, "%s %s: %s: %s\n", name, cmd.Name, EnvCPUProfile, capLine(perr.Error()))
		return ExitUsage
	}
	defer stopProfile() // also after a panic
	// Ctrl-C or SIGTERM exits at once: the profile is written first.
	stopCatching := env.catchInterrupts(name+" "+cmd.Name, stderr, func(code int) { stopProfile(); exitProcess(code) })
	env.intMu.Lock()
	env.stopCatch = stopCatching
	env.intMu.Unlock()
	defer env.HandleSignals()
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "%s %s: internal error: %v\n", name, cmd.Name, firstLine(fmt.Sprint(r)))
			if os.Getenv("HYPERNOISE_DEBUG") != "" {
				fmt.Fprintf(stderr, "%s\n", debug.Stack())
			}
			code = ExitFailure
		}
	}()
	err := cmd.Run(env, args[1:])
	var ue *UsageError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return ExitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "%s %s: %s\n", name, cmd.Name, capLine(strings.TrimPrefix(firstLine(ue.Msg), cmd.Name+": ")))
		return ExitUsage
	case errors.Is(err, safeio.ErrRefused):
		fmt.Fprintf(stderr, "%s %s: %s\n", name, cmd.Name, capLine(strings.TrimPrefix(err.Error(), cmd.Name+": ")))
		return ExitUsage
	default:
		fmt.Fprintf(stderr, "%s %s: %s\n", name, cmd.Name, capLine(strings.TrimPrefix(err.Error(), cmd.Name+": ")))
		return ExitFailure
	}
}

// MaxMessage is the most bytes of an error message printed: a message that quotes a huge argument
// (a 100 kB prompt) is cut, saying how much was left out.
const MaxMessage = 2000

func capLine(s string) string {
	if len(s) <= MaxMessage {
		return s
	}
	cut := MaxMessage
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return fmt.Sprintf("%s... (%d more bytes of this message left out)", s[:cut], len(s)-cut)
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// limitRuntime prepares the process for large work: the memory budget becomes the Go runtime's soft
// memory limit (the collector works harder before the heap exceeds it), and, unless
// $HYPERNOISE_DEBUG is set, a fatal runtime error (such as running out of memory) prints its
// one-line cause without goroutine stack traces. It returns a function restoring the settings.
func limitRuntime() func() {
	prevLimit := int64(-1)
	if b, err := MemBudget(); err == nil {
		prevLimit = debug.SetMemoryLimit(b)
	}
	if os.Getenv("HYPERNOISE_DEBUG") == "" {
		debug.SetTraceback("none")
	}
	return func() {
		if prevLimit >= 0 {
			debug.SetMemoryLimit(prevLimit)
		}
		debug.SetTraceback("single")
	}
}

// EnvCPUProfile names the environment variable that makes Main write Go's CPU profile of the
// command to a file (pprof format; `go tool pprof` reads it).
const EnvCPUProfile = "HYPERNOISE_CPUPROFILE"

// exitProcess ends the process after an interrupt (tests replace it).
var exitProcess = os.Exit

// startCPUProfile starts Go's CPU profiler writing to path and returns the function that stops it
// and closes the file (once, whoever calls it first); with an empty path it does nothing.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			f.Close()
		})
	}, nil
}
