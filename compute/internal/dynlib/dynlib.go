// Package dynlib is the search compute's run-time library loaders share: the file named by an
// environment variable ("off" to go without the library), else the first of a list of candidate
// files that opens.
package dynlib

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Search describes one library's search.
type Search struct {
	Env        string   // environment variable: a path to the library, or "off"
	Candidates []string // tried in order when Env is unset; an absolute one only if the file exists
	Prefix     string   // of error messages, e.g. "blas"
	Name       string   // for the not-found message, e.g. "OpenBLAS library"
	Install    string   // the command that installs it ("" when there is none to suggest)
	Off        error    // returned when Env is "off"
}

// Find returns open's result for the library s finds. Errors say what was tried and, when
// s.Install is set, how to install the library.
func Find[T any](s Search, open func(path string) (T, error)) (T, error) {
	var zero T
	install := ""
	if s.Install != "" {
		install = "install it with: " + s.Install
	}
	if v := strings.TrimSpace(os.Getenv(s.Env)); v != "" {
		if strings.EqualFold(v, "off") {
			return zero, s.Off
		}
		lib, err := open(v)
		if err != nil {
			hint := "unset it to search the usual places"
			if install != "" {
				hint += ", or " + install
			}
			return zero, fmt.Errorf("%w (from $%s; %s)", err, s.Env, hint)
		}
		return lib, nil
	}
	var tried []string
	for _, path := range s.Candidates {
		if strings.HasPrefix(path, "/") {
			if _, err := os.Stat(path); err != nil {
				continue
			}
		}
		lib, err := open(path)
		if err == nil {
			return lib, nil
		}
		tried = append(tried, err.Error())
	}
	msg := s.Prefix + ": no " + s.Name + " found"
	if len(tried) > 0 {
		msg += " (" + strings.Join(tried, "; ") + ")"
	}
	if install != "" {
		msg += "; " + install
	}
	return zero, errors.New(msg)
}
