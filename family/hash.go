package family

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"

	"github.com/gomlx/gomlx/pkg/ml/context"
)

// HashScopes is a SHA-256 over the variables of ctx under the given top-level scopes (names and
// raw values, in name order): it identifies a generator's weights, so that a hypernetwork can
// refuse a generator it was not trained for.
func HashScopes(ctx *context.Context, scopes ...string) string {
	h := sha256.New()
	var names []string
	vars := map[string]*context.Variable{}
	for v := range ctx.IterVariables() {
		for _, top := range scopes {
			if inScope(v.Scope(), context.ScopeSeparator+strings.TrimPrefix(top, context.ScopeSeparator)) {
				names = append(names, v.ScopeAndName())
				vars[v.ScopeAndName()] = v
				break
			}
		}
	}
	sort.Strings(names)
	for _, n := range names {
		h.Write([]byte(n))
		if t, err := vars[n].Value(); err == nil {
			_ = t.ConstBytes(func(b []byte) { h.Write(b) })
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// inScope reports whether scope is root or below it.
func inScope(scope, root string) bool {
	return scope == root || strings.HasPrefix(scope, root+context.ScopeSeparator)
}
