package pipeline

import (
	"github.com/gomlx/gomlx/backends"
	"github.com/hypernoise/hypernoise/ckpt"
	"github.com/hypernoise/hypernoise/models/fashion"
)

// TestStatsFile is where WriteTestStats writes the embedded model's reference statistics.
const TestStatsFile = fashion.TestStatsFile

// WriteTestStats computes the held-out feature statistics of the installed Fashion-MNIST test set
// with the embedded model's held-out classifier and writes them to TestStatsFile (embedded in the
// binary at the next build, so evaluation needs no dataset).
func WriteTestStats(backend backends.Backend) (*fashion.TestStats, error) {
	m, err := fashion.Default()
	if err != nil {
		return nil, err
	}
	st, err := fashion.ComputeTestStats(backend, m, "")
	if err != nil {
		return nil, err
	}
	data, err := st.Encode()
	if err != nil {
		return nil, err
	}
	return st, ckpt.WriteFileAtomic(TestStatsFile, data)
}
