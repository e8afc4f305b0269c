package onnx

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
)

// GridPNG lays out n images [n, h, w, c] (c = 1 grey or 3 RGB, values in [0, 1], clamped; the
// format Model.Generate returns) in a grid of cols columns, each pixel scaled by scale, with pad
// pixels between images, and encodes it as PNG.
func GridPNG(images []float32, n, h, w, c, cols, scale, pad int) ([]byte, error) {
	switch {
	case c != 1 && c != 3:
		return nil, fmt.Errorf("images must have 1 or 3 channels, got %d", c)
	case n < 1 || h < 1 || w < 1 || len(images) != n*h*w*c:
		return nil, fmt.Errorf("%d values for %d images of %dx%dx%d", len(images), n, h, w, c)
	case cols < 1 || scale < 1 || pad < 0:
		return nil, fmt.Errorf("bad grid layout: cols %d, scale %d, pad %d", cols, scale, pad)
	}
	rows := (n + cols - 1) / cols
	cw, ch := w*scale+pad, h*scale+pad
	img := image.NewRGBA(image.Rect(0, 0, cols*cw+pad, rows*ch+pad))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	level := func(v float32) uint8 {
		if !(v > 0) {
			return 0
		}
		if v >= 1 {
			return 255
		}
		return uint8(v*255 + 0.5)
	}
	for k := range n {
		x0, y0 := pad+(k%cols)*cw, pad+(k/cols)*ch
		for y := range h {
			for x := range w {
				p := images[((k*h+y)*w+x)*c:]
				col := color.RGBA{level(p[0]), level(p[0]), level(p[0]), 255}
				if c == 3 {
					col = color.RGBA{level(p[0]), level(p[1]), level(p[2]), 255}
				}
				for dy := range scale {
					for dx := range scale {
						img.SetRGBA(x0+x*scale+dx, y0+y*scale+dy, col)
					}
				}
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
