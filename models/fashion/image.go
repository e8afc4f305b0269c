package fashion

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
)

// Noise returns n noise samples [n,7,7,4] (flattened) drawn from N(0, I) by a PCG generator seeded
// with seed: the same seed always gives the same noise, on every machine.
func Noise(n int, seed uint64) []float32 {
	return normals(rand.New(rand.NewPCG(seed, 0x5eed)), n*LatentDim)
}

// GridPNG lays out n grey images [n,28,28] (values in [0,1], clamped) in a grid of cols columns
// with a pad-pixel border, each image scaled up by scale, and encodes it as PNG.
func GridPNG(images []float32, n, cols, scale, pad int) ([]byte, error) {
	if n < 1 || len(images) != n*Side*Side {
		return nil, fmt.Errorf("grid: %d values for %d images of %dx%d", len(images), n, Side, Side)
	}
	if cols < 1 || scale < 1 || pad < 0 {
		return nil, fmt.Errorf("grid: bad layout cols=%d scale=%d pad=%d", cols, scale, pad)
	}
	cols = min(cols, n)
	rows := (n + cols - 1) / cols
	cell := Side*scale + pad
	img := image.NewGray(image.Rect(0, 0, cols*cell+pad, rows*cell+pad))
	for i := range img.Pix {
		img.Pix[i] = 255 // white border
	}
	for k := range n {
		ox, oy := pad+(k%cols)*cell, pad+(k/cols)*cell
		for y := range Side * scale {
			for x := range Side * scale {
				v := float64(images[k*Side*Side+(y/scale)*Side+x/scale])
				if math.IsNaN(v) {
					v = 0
				}
				v = math.Min(math.Max(v, 0), 1)
				// Fashion-MNIST is white clothing on black; keep that convention.
				img.SetGray(ox+x, oy+y, color.Gray{Y: uint8(math.Round(255 * v))})
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
