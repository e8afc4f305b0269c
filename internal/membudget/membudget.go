// Package membudget is the memory budget that commands plan against ($HYPERNOISE_MEM_BUDGET, else
// 80% of the machine's or the cgroup's memory): the up-front refusals of runs that cannot fit
// (cli.CheckMemory) and the chunk sizes that follow a model's memory estimate
// (family.Model.ChunkRows) both read it.
package membudget

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Env names the environment variable that sets the memory budget, e.g. "8GiB", "512M"
// or a number of bytes.
const Env = "HYPERNOISE_MEM_BUDGET"

// Budget returns the memory, in bytes, a command may plan to use: $HYPERNOISE_MEM_BUDGET if
// set, else 80% of the machine's (or the cgroup's, if smaller) memory, else 4 GiB if neither is
// known. A malformed variable is an error.
func Budget() (int64, error) {
	if v := strings.TrimSpace(os.Getenv(Env)); v != "" {
		b, err := ParseBytes(v)
		if err != nil {
			return 0, fmt.Errorf("$%s: %v", Env, err)
		}
		return b, nil
	}
	total := PhysicalMemory()
	if total <= 0 {
		return 4 << 30, nil
	}
	return total / 5 * 4, nil
}

// ParseBytes parses a size such as "1500000", "512M", "8G", "8GiB" or "2.5GB" (K, M, G, T are
// powers of 1024, with or without "B" or "iB").
func ParseBytes(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := 1.0
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:n-1]
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || !(f > 0) || f*mult > 1<<60 {
		return 0, fmt.Errorf("%q is not a memory size like 8GiB, 512M or a positive number of bytes", s)
	}
	return int64(f * mult), nil
}

// PhysicalMemory is MemTotal from /proc/meminfo, capped by a cgroup v2 limit; 0 if unknown.
func PhysicalMemory() int64 {
	var total int64
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) >= 2 && fields[0] == "MemTotal:" {
				if kb, err := strconv.ParseInt(fields[1], 10, 64); err == nil {
					total = kb << 10
				}
			}
		}
		f.Close()
	}
	if data, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if lim, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64); err == nil && lim > 0 && (total == 0 || lim < total) {
			total = lim
		}
	}
	return total
}
