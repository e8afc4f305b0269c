package compositional

import (
	"math"

	"github.com/hypernoise/hypernoise/models/fashion"
)

// Measure computes a statistic of one image (28*28 pixel values in [0,1], row-major) on its hard
// ink mask x > InkLevel: the held-out check's statistic.
func Measure(s Stat, img []float32) float64 {
	const side = fashion.Side
	switch s {
	case Tone:
		sum, n := 0.0, 0
		for _, v := range img {
			if v > InkLevel {
				sum += float64(v)
				n++
			}
		}
		if n == 0 {
			return 0
		}
		return sum / float64(n)
	case Area:
		n := 0
		for _, v := range img {
			if v > InkLevel {
				n++
			}
		}
		return float64(n) / float64(len(img))
	case Width:
		// Standard deviation of the ink pixels' column index, in units of the image side.
		s, s2, n := 0.0, 0.0, 0.0
		for i, v := range img {
			if v > InkLevel {
				x := float64(i % side)
				s += x
				s2 += x * x
				n++
			}
		}
		if n == 0 {
			return 0
		}
		m := s / n
		return math.Sqrt(math.Max(s2/n-m*m, 0)) / side
	}
	panic("compositional: unknown statistic")
}

// MeasureAll computes every statistic of one image, indexed by Stat.
func MeasureAll(img []float32) [NumStats]float64 {
	var out [NumStats]float64
	for s := range NumStats {
		out[s] = Measure(s, img)
	}
	return out
}
