package compute

import (
	"sort"
	"sync"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
)

// OpTime is the time spent in one kind of backend op, and how many ran.
type OpTime struct {
	Op      string        `json:"op"`
	Time    time.Duration `json:"ns"`
	Count   int           `json:"count"`
	Percent float64       `json:"percent"`
}

var (
	opTimesOnce sync.Once
	opTimesMu   sync.Mutex
	opTimes     [backends.OpTypeLast]time.Duration
	opCounts    [backends.OpTypeLast]int
)

// EnableOpTimes makes every pure-Go backend (patched or not) time each op it executes, from now on, for
// OpTimes. It costs two clock reads and a lock per op; for profiling only.
func EnableOpTimes() {
	installFastDot()
	installFastOps()
	installPadNode()
	opTimesOnce.Do(func() {
		for op := range simplegoNodeExecutors {
			ex := simplegoNodeExecutors[op]
			if ex == nil {
				continue
			}
			simplegoNodeExecutors[op] = func(b *simplego.Backend, n *simplego.Node, in []*simplego.Buffer, owned []bool) (*simplego.Buffer, error) {
				start := time.Now()
				out, err := ex(b, n, in, owned)
				d := time.Since(start)
				opTimesMu.Lock()
				opTimes[op] += d
				opCounts[op]++
				opTimesMu.Unlock()
				return out, err
			}
		}
	})
}

// OpTimes returns the time per op kind since EnableOpTimes, largest first, and resets the counters.
func OpTimes() []OpTime {
	opTimesMu.Lock()
	defer opTimesMu.Unlock()
	var total time.Duration
	var out []OpTime
	for op, d := range opTimes {
		if opCounts[op] > 0 {
			out = append(out, OpTime{Op: backends.OpType(op).String(), Time: d, Count: opCounts[op]})
			total += d
		}
		opTimes[op], opCounts[op] = 0, 0
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time > out[j].Time })
	for i := range out {
		if total > 0 {
			out[i].Percent = 100 * float64(out[i].Time) / float64(total)
		}
	}
	return out
}
