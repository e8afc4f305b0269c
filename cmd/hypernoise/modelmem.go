package main

import "github.com/hypernoise/hypernoise/cli"

// checkMemoryFit is cli.CheckMemory for a run of n units of flag (e.g. --n images per prompt,
// --batch samples), need(k) being the estimate for k units: over the budget, the refusal (exit 2)
// also names the largest value of flag that fits, or says that none does.
func checkMemoryFit(what, flag string, n int, need func(k int) int64) error {
	err := cli.CheckMemory(what, need(n))
	if err == nil {
		return nil
	}
	budget, berr := cli.MemBudget()
	if berr != nil {
		return berr
	}
	lo, hi := 0, n
	for lo < hi { // largest k in [0, n] with need(k) <= budget (need grows with k)
		mid := (lo + hi + 1) / 2
		if need(mid) <= budget {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	if lo == 0 {
		return cli.Usagef("%v; no %s fits", err, flag)
	}
	return cli.Usagef("%v; %s %d would fit", err, flag, lo)
}
