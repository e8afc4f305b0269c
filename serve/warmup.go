package serve

import (
	"fmt"
	"time"

	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/infer"
)

// WarmupSizes are the batch sizes a warm-up compiles: the powers of two up to the largest batch
// (the pipeline pads a batch to the next power of two, so these are every graph a batch needs).
func (s *Server) WarmupSizes() []int {
	var out []int
	for b := 1; ; b *= 2 {
		out = append(out, min(b, s.cfg.MaxBatch))
		if b >= s.cfg.MaxBatch {
			return out
		}
	}
}

// Warmup runs base and each loaded hypernetwork (the hypernoise method) once at every batch size
// of WarmupSizes, so that their graphs are compiled before the first request. It returns the
// number of runs and their wall time.
func (s *Server) Warmup() (runs int, sec float64, err error) {
	t0 := time.Now()
	reqs := []infer.Request{{Method: "base"}}
	for _, h := range s.p.Hypernets() {
		reqs = append(reqs, infer.Request{Method: "hypernoise", Hypernet: h.Name})
	}
	shape := s.p.Model().Generator.NoiseShape()
	for _, req := range reqs {
		for _, b := range s.WarmupSizes() {
			if _, err := s.runRows(req, hypernoise.PromptNoise(0, 0, b, shape), make([]int32, b)); err != nil {
				return runs, time.Since(t0).Seconds(), fmt.Errorf("warm-up of %s%s at %d images: %w", req.Method, suffix(req.Hypernet), b, err)
			}
			runs++
		}
	}
	return runs, time.Since(t0).Seconds(), nil
}

func suffix(hypernet string) string {
	if hypernet == "" {
		return ""
	}
	return " (" + hypernet + ")"
}
