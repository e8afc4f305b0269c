package family

import "github.com/hypernoise/hypernoise/internal/membudget"

// ChunkBudgetShare: a chunk is sized so that the sampling estimate of running it,
// SampleBase + rows * (ForwardPerRow or GradPerRow), stays under 1/ChunkBudgetShare of the memory
// budget ($HYPERNOISE_MEM_BUDGET, default 80% of the machine's memory). A quarter leaves the rest
// of the budget for what a command holds besides one chunk's activations (the samples kept, the
// tilt pool, a training run's state) and for the estimate's own error.
const ChunkBudgetShare = 4

// ChunkRows is the most rows, at most limit and at least 1, that one compiled call of fit's model
// may run within budget: the largest k with SampleBase + k*perRow <= budget/ChunkBudgetShare,
// perRow being GradPerRow when grad (the call takes gradients, as ReNO's) else ForwardPerRow.
// With no per-row figure (nil fit, or 0) it is limit: the chunk keeps its default size.
func (f *MemoryFit) ChunkRows(budget int64, grad bool, limit int) int {
	limit = max(limit, 1)
	if f == nil {
		return limit
	}
	per := f.ForwardPerRow
	if grad {
		per = f.GradPerRow
	}
	if per <= 0 {
		return limit
	}
	left := budget/ChunkBudgetShare - f.SampleBase
	if left < per {
		return 1
	}
	if k := left / per; k < int64(limit) {
		return int(k)
	}
	return limit
}

// ChunkRows is m.Memory.ChunkRows at the memory budget ($HYPERNOISE_MEM_BUDGET; 4 GiB when it is
// malformed, which the commands refuse before they run): the rows one compiled call of the
// model runs, at most limit (the chunk's default, which it never exceeds). Chunking changes
// memory and speed only: every chunked computation treats rows independently, so the results
// are the same for any chunk.
func (m *Model) ChunkRows(grad bool, limit int) int {
	budget, err := membudget.Budget()
	if err != nil {
		budget = 4 << 30
	}
	return m.Memory.ChunkRows(budget, grad, limit)
}
