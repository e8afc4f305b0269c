package cli

import (
	"flag"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Range is the accepted interval [Lo, Hi] of a numeric flag, both ends included.
type Range struct{ Lo, Hi float64 }

func (r Range) String() string { return fmt.Sprintf("[%s, %s]", fmtNum(r.Lo), fmtNum(r.Hi)) }

func fmtNum(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

// Range documents and enforces the range of numeric flag name of fs: its usage text gains
// "(range [lo, hi])", and Parse refuses a value outside it (NaN included) as a usage error (exit
// code 2) that states the range. Set ranges so that every accepted value keeps the command's
// results finite. It panics if fs has no such flag (a programming error).
func (env *Env) Range(fs *flag.FlagSet, name string, lo, hi float64) {
	f := fs.Lookup(name)
	if f == nil {
		panic(fmt.Sprintf("cli: flag --%s of %s has no definition", name, fs.Name()))
	}
	if env.ranges == nil {
		env.ranges = map[*flag.FlagSet]map[string]Range{}
	}
	if env.ranges[fs] == nil {
		env.ranges[fs] = map[string]Range{}
	}
	r := Range{lo, hi}
	if _, done := env.ranges[fs][name]; !done {
		f.Usage += " (range " + r.String() + ")"
	}
	env.ranges[fs][name] = r
}

// numericValue returns a numeric flag's current value, and whether the flag is numeric.
func numericValue(f *flag.Flag) (float64, bool) {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return 0, false
	}
	switch v := g.Get().(type) {
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	case uint:
		return float64(v), true
	case uint64:
		return float64(v), true
	case float64:
		return v, true
	case time.Duration:
		return v.Seconds(), true
	}
	return 0, false
}

// checkRanges refuses a flag given on the command line whose value is outside its Range. With
// RequireRanges set it also refuses a numeric flag that has no Range at all (the test of "every
// numeric flag has a documented range" sets it).
func (env *Env) checkRanges(fs *flag.FlagSet) error {
	ranges := env.ranges[fs]
	var err error
	fs.Visit(func(f *flag.Flag) {
		r, ok := ranges[f.Name]
		v, numeric := numericValue(f)
		if err != nil || !ok || !numeric {
			return
		}
		if !(v >= r.Lo && v <= r.Hi) {
			err = Usagef("--%s must be in %s, got %s", f.Name, r, f.Value.String())
		}
	})
	if err != nil {
		return err
	}
	return env.missingRanges(fs)
}

// missingRanges, with RequireRanges set, is an error naming the numeric flags of fs that have no
// Range.
func (env *Env) missingRanges(fs *flag.FlagSet) error {
	if !RequireRanges {
		return nil
	}
	var missing []string
	fs.VisitAll(func(f *flag.Flag) {
		if _, numeric := numericValue(f); numeric {
			if _, ok := env.ranges[fs][f.Name]; !ok {
				missing = append(missing, "--"+f.Name)
			}
		}
	})
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("%s: numeric flags without a documented range: %s", fs.Name(), strings.Join(missing, ", "))
	}
	return nil
}

// RequireRanges makes Parse fail for a numeric flag with no Range (for tests).
var RequireRanges = false

// CheckFloat refuses a value outside [lo, hi] (NaN included) for a setting that is not a flag (a
// field of a spec or config), naming it and the range.
func CheckFloat(what string, v, lo, hi float64) error {
	if !(v >= lo && v <= hi) {
		return Usagef("%s must be in %s, got %s", what, Range{lo, hi}, fmtNum(v))
	}
	return nil
}

// MaxFinite is a bound well inside float32's range, for "any finite number" flags: values beyond
// it overflow once squared or multiplied in float32.
const MaxFinite = 1e6
