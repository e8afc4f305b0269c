package serve

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// queryKeyNames are query parameters that look like an API key: refused, so that a key never
// travels in a URL (which proxies, logs and browser histories keep).
var queryKeyNames = []string{"api_key", "apikey", "api-key", "key", "access_token", "token", "x-api-key", "auth", "authorization"}

// openPaths answer without a key: the health check and the page (which asks for the key).
var openPaths = []string{"/healthz", "/"}

// checkAccess validates the access settings: keys of 8 to 512 printable characters without
// spaces, origins as scheme://host[:port], host names without scheme or path.
func checkAccess(c Config) error {
	for i, k := range c.Keys {
		if len(k) < 8 || len(k) > 512 || strings.ContainsFunc(k, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return fmt.Errorf("API key %d must be 8 to 512 printable characters without spaces (got %d characters)", i+1, len(k))
		}
	}
	for _, o := range c.AllowOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return fmt.Errorf("allowed origin %q must be scheme://host[:port], e.g. https://app.example.com", o)
		}
	}
	for _, h := range c.AllowHosts {
		if h == "" || strings.ContainsAny(h, "/?#@ ") {
			return fmt.Errorf("allowed host %q must be a host name with an optional port, e.g. gen.example.com", h)
		}
	}
	return nil
}

// hashKeys returns the SHA-256 of each key: keys are compared as digests of equal length, in
// constant time.
func hashKeys(keys []string) [][sha256.Size]byte {
	out := make([][sha256.Size]byte, len(keys))
	for i, k := range keys {
		out[i] = sha256.Sum256([]byte(k))
	}
	return out
}

// requestKey is the key a request carries (Authorization: Bearer KEY, else x-api-key), or "".
func requestKey(r *http.Request) string {
	if a := r.Header.Get("Authorization"); a != "" {
		if scheme, tok, ok := strings.Cut(a, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	return strings.TrimSpace(r.Header.Get("X-Api-Key"))
}

// keyOK reports whether key is one of the server's keys; every key is compared, in constant time.
func (s *Server) keyOK(key string) bool {
	h := sha256.Sum256([]byte(key))
	match := 0
	for i := range s.keys {
		match |= subtle.ConstantTimeCompare(h[:], s.keys[i][:])
	}
	return match == 1 && key != ""
}

// hostOK reports whether a request's Host header names this server: an IP address (a browser
// that sends one is not being DNS-rebound), localhost, or an allowed host name (with or without
// its port). Other names are refused, since a page of evil.example that rebinds its name to a
// loopback address sends Host: evil.example.
func (s *Server) hostOK(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "" {
		return false
	}
	if net.ParseIP(host) != nil || host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	return slices.ContainsFunc(s.cfg.AllowHosts, func(a string) bool {
		a = strings.ToLower(a)
		return a == host || a == strings.ToLower(hostport)
	})
}

// originOK reports whether a browser Origin may call the API: the page's own origin (same host as
// the request's Host) or one of the allowed origins.
func (s *Server) originOK(origin, host string) (same, allowed bool) {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false, false
	}
	if strings.EqualFold(u.Host, host) {
		return true, true
	}
	return false, slices.ContainsFunc(s.cfg.AllowOrigins, func(a string) bool {
		return strings.EqualFold(strings.TrimSuffix(a, "/"), origin)
	})
}

// guard applies the access rules before the API: Host, no key in the URL, Origin (with CORS for
// the allowed origins) and, when the server has keys, a valid key on every path but the open ones.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hostOK(r.Host) {
			writeError(w, &BadRequest{Status: http.StatusForbidden, Code: "host_not_allowed",
				Msg: "the Host header names neither this server nor an allowed host (start the server with --allow-host NAME to serve it under that name)"})
			return
		}
		q := r.URL.Query()
		for _, name := range queryKeyNames {
			if q.Has(name) {
				writeError(w, &BadRequest{Status: http.StatusBadRequest, Code: "api_key_in_query", Param: name,
					Msg: "API keys are not accepted in the URL (URLs end up in logs and histories); send the key as 'Authorization: Bearer KEY' or 'x-api-key: KEY'"})
				return
			}
		}
		if origin := r.Header.Get("Origin"); origin != "" {
			same, allowed := s.originOK(origin, r.Host)
			if allowed && !same {
				w.Header().Set("Access-Control-Allow-Origin", origin)
				w.Header().Add("Vary", "Origin")
			}
			unsafe := r.Method != http.MethodGet && r.Method != http.MethodHead
			if unsafe && !allowed {
				writeError(w, &BadRequest{Status: http.StatusForbidden, Code: "origin_not_allowed",
					Msg: fmt.Sprintf("requests from the web origin %q are refused (start the server with --allow-origin %s to allow it)", origin, origin)})
				return
			}
			if r.Method == http.MethodOptions {
				w.Header().Set("Access-Control-Allow-Methods", "GET, POST")
				w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Api-Key")
				w.Header().Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		if len(s.keys) > 0 && !slices.Contains(openPaths, r.URL.Path) {
			key := requestKey(r)
			if !s.keyOK(key) {
				msg := "missing API key: send it as 'Authorization: Bearer KEY' or 'x-api-key: KEY'"
				if key != "" {
					msg = "invalid API key"
				}
				w.Header().Set("WWW-Authenticate", `Bearer realm="hypernoise"`)
				writeError(w, &BadRequest{Status: http.StatusUnauthorized, Msg: msg, Code: "invalid_api_key"})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
