package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/hypernoise/hypernoise/cli"
)

// EnvAPIKeys names the environment variable holding API keys (separated by commas or white space).
const EnvAPIKeys = "HYPERNOISE_API_KEYS"

// loadKeys returns the API keys of --api-key-file (one per line; blank lines and lines starting
// with # skipped) and of $HYPERNOISE_API_KEYS.
func loadKeys(file string) ([]string, error) {
	var keys []string
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, cli.Usagef("serve: --api-key-file: %v", err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				keys = append(keys, line)
			}
		}
		if len(keys) == 0 {
			return nil, cli.Usagef("serve: --api-key-file %s holds no key", file)
		}
	}
	keys = append(keys, strings.FieldsFunc(os.Getenv(EnvAPIKeys), func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	})...)
	return keys, nil
}

// checkListen refuses an empty listen address, and a non-loopback one when the server has no
// keys and --insecure was not given. It returns the host name to accept in Host headers when
// the address names one (other than an IP address or localhost).
func checkListen(addr string, keys int, insecure bool) (string, error) {
	if strings.TrimSpace(addr) == "" {
		return "", cli.Usagef("serve: --addr is empty; give HOST:PORT, e.g. 127.0.0.1:8080 (or 0.0.0.0:8080 with API keys)")
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", cli.Usagef("serve: --addr %q: %v", addr, err)
	}
	ip := net.ParseIP(host)
	loopback := host == "localhost" || ip != nil && ip.IsLoopback()
	if !loopback && keys == 0 && !insecure {
		return "", cli.Usagef("serve: refusing to listen on %s without API keys: anyone who reaches it could generate; give --api-key-file or $%s, or --insecure", addr, EnvAPIKeys)
	}
	if host != "" && ip == nil && host != "localhost" {
		return host, nil
	}
	return "", nil
}

// requestLogger is the per-request logger of --log: text or json lines on w, or none.
func requestLogger(format string, w io.Writer) (*slog.Logger, error) {
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	case "off":
		return nil, nil
	}
	return nil, cli.Usagef("serve: --log %q: use text, json or off", format)
}

// warmupLine is the start-up line of a warm-up.
func warmupLine(runs int, sec float64) string {
	return fmt.Sprintf("serve: warm-up compiled %d batch graphs in %.1f s\n", runs, sec)
}
