//go:build !unix

package bench

// processCPUSeconds is not measured on this system.
func processCPUSeconds() float64 { return 0 }

// peakRSS is not measured on this system.
func peakRSS() int64 { return 0 }
