package cli

import (
	"fmt"

	"github.com/hypernoise/hypernoise/internal/membudget"
)

// EnvMemBudget names the environment variable that sets the memory budget, e.g. "8GiB", "512M"
// or a number of bytes.
const EnvMemBudget = membudget.Env

// MemBudget returns the memory, in bytes, a command may plan to use: $HYPERNOISE_MEM_BUDGET if
// set, else 80% of the machine's (or the cgroup's, if smaller) memory, else 4 GiB if neither is
// known (membudget.Budget). A malformed variable is a usage error.
func MemBudget() (int64, error) {
	b, err := membudget.Budget()
	if err != nil {
		return 0, Usagef("%v", err)
	}
	return b, nil
}

// ParseBytes parses a size such as "1500000", "512M", "8G", "8GiB" or "2.5GB" (K, M, G, T are
// powers of 1024, with or without "B" or "iB").
func ParseBytes(s string) (int64, error) { return membudget.ParseBytes(s) }

// CheckMemory is a usage error (exit 2) when a command's up-front estimate need exceeds the memory
// budget; what names the work, e.g. "train --batch 4096".
func CheckMemory(what string, need int64) error {
	budget, err := MemBudget()
	if err != nil {
		return err
	}
	if need > budget {
		return Usagef("%s needs about %s of memory, more than the budget of %s (set $%s to change it, or reduce the sizes)",
			what, FormatBytes(need), FormatBytes(budget), EnvMemBudget)
	}
	return nil
}

// FormatBytes writes a size in MiB or GiB.
func FormatBytes(b int64) string {
	if b >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	}
	if b < 1<<20 {
		return fmt.Sprintf("%.0f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}
