package toy2d

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/hypernoise/hypernoise/ckpt"
)

// PNG renders the densities on the grid: the target first, then one panel per method, each
// titled with its KL and mean reward, then the tilt dial at each of its betas (KL to that beta's
// own target). Every panel uses the same colour scale,
// sqrt(p / max p_target) clipped at 1, so heights compare across panels.
func (r *Report) PNG() ([]byte, error) {
	if r.targetDensity == nil {
		return nil, fmt.Errorf("report has no densities (was it decoded from JSON?)")
	}
	const (
		cell   = 4  // pixels per grid cell
		title  = 32 // title band height
		margin = 8
		cols   = 4
	)
	n := r.Grid.Cells
	side := n * cell
	panels := 1 + len(r.order) + len(r.dialOrder)
	rows := (panels + cols - 1) / cols
	w := cols*(side+margin) + margin
	h := rows*(side+title+margin) + margin
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)

	peak := 0.0
	for _, p := range r.targetDensity[:n*n] {
		peak = math.Max(peak, p)
	}
	if peak == 0 {
		peak = 1
	}
	face := basicfont.Face7x13
	label := func(x, y int, s string) {
		d := &font.Drawer{Dst: img, Src: image.Black, Face: face, Dot: fixed.P(x, y)}
		d.DrawString(s)
	}
	panel := func(k int, name, line2 string, dens []float64) {
		x0 := margin + (k%cols)*(side+margin)
		y0 := margin + (k/cols)*(side+title+margin)
		label(x0, y0+12, name)
		label(x0, y0+26, line2)
		for i := range n {
			for j := range n {
				v := math.Sqrt(math.Min(1, dens[i*n+j]/peak))
				c := colormap(v)
				// row i is y from -extent upwards: draw it from the bottom.
				py := y0 + title + (n-1-i)*cell
				px := x0 + j*cell
				draw.Draw(img, image.Rect(px, py, px+cell, py+cell), &image.Uniform{c}, image.Point{}, draw.Src)
			}
		}
	}
	panel(0, "target (exact tilt)", fmt.Sprintf("reward %.3g", r.Target.Reward), r.targetDensity)
	for k, m := range r.order {
		res := r.Methods[m]
		panel(k+1, m, fmt.Sprintf("KL %.3f  reward %.3g", res.KL, res.Reward), res.density)
	}
	// The tilt dial's panels: each scored against its own beta's target (not the one drawn first).
	for k, b := range r.dialOrder {
		res := r.Dial[b]
		panel(1+len(r.order)+k, "dial at beta "+b, fmt.Sprintf("KL %.3f (own target)", res.KL), res.density)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WritePNG writes PNG() to path atomically.
func (r *Report) WritePNG(path string) error {
	data, err := r.PNG()
	if err != nil {
		return err
	}
	return ckpt.WriteFileAtomic(path, data)
}

// colormap maps v in [0, 1] to a dark-blue -> teal -> yellow ramp (viridis-like).
func colormap(v float64) color.RGBA {
	stops := [][3]float64{{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}}
	v = math.Max(0, math.Min(1, v))
	pos := v * float64(len(stops)-1)
	i := int(pos)
	if i >= len(stops)-1 {
		i = len(stops) - 2
	}
	f := pos - float64(i)
	mix := func(a, b float64) uint8 { return uint8(a + (b-a)*f + 0.5) }
	return color.RGBA{mix(stops[i][0], stops[i+1][0]), mix(stops[i][1], stops[i+1][1]), mix(stops[i][2], stops[i+1][2]), 255}
}
