package cli

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/hypernoise/hypernoise/internal/membudget"
)

// oomKills returns the number of kills by the kernel's out-of-memory killer that the system
// records (the sum over /proc/vmstat's oom_kill and this process's cgroup v1 and v2 counters), and
// whether any of them could be read. A kill by the OOM killer raises it; a kill -9 by a user does
// not.
func oomKills() (int64, bool) {
	var total int64
	known := false
	add := func(path, key string) {
		if n, ok := counterIn(path, key); ok {
			total += n
			known = true
		}
	}
	add("/proc/vmstat", "oom_kill")
	add("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill")
	if data, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if rest, ok := strings.CutPrefix(line, "0::"); ok {
				add("/sys/fs/cgroup"+strings.TrimSpace(rest)+"/memory.events", "oom_kill")
			}
		}
	}
	return total, known
}

// counterIn reads the value of a "key value" line from a small kernel file.
func counterIn(path, key string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 2 && fields[0] == key {
			n, err := strconv.ParseInt(fields[1], 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// killMessage explains a SIGKILL of the child: blamed on memory only when the system recorded an
// out-of-memory kill while it ran, or (when no counter can be read) when its peak memory came
// within 10% of the machine's; otherwise it says a process outside hypernoise killed it.
func killMessage(name string, oomBefore, oomAfter int64, countersKnown bool, peakRSS int64) string {
	budget, _ := MemBudget()
	peak := "unknown"
	if peakRSS > 0 {
		peak = FormatBytes(peakRSS)
	}
	total := membudget.PhysicalMemory()
	switch {
	case countersKnown && oomAfter > oomBefore:
		return fmt.Sprintf("%s: the command was killed by the system's out-of-memory killer (peak memory %s; the memory budget is %s, $%s)",
			name, peak, FormatBytes(budget), EnvMemBudget)
	case countersKnown:
		return fmt.Sprintf("%s: the command was killed (SIGKILL) by another process; the system recorded no out-of-memory kill (peak memory %s)", name, peak)
	case total > 0 && peakRSS > total/10*9:
		return fmt.Sprintf("%s: the command was killed (SIGKILL), most likely by the system for lack of memory (peak memory %s of %s; the memory budget is %s, $%s)",
			name, peak, FormatBytes(total), FormatBytes(budget), EnvMemBudget)
	}
	return fmt.Sprintf("%s: the command was killed (SIGKILL) by another process or the system (peak memory %s, well below the machine's)", name, peak)
}
