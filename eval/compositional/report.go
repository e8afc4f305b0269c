package compositional

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/hypernoise/hypernoise/ckpt"
	"github.com/hypernoise/hypernoise/eval/report"
	"github.com/hypernoise/hypernoise/models/fashion"
)

// Table renders the figures, one row per method: success, held-out alignment and held-out class
// probability with their 95% bootstrap intervals, the attribute pass rate, the gain ratio of
// success against ReNO, network evaluations and milliseconds per image.
func (r *Result) Table() report.Table {
	t := report.Table{Columns: []string{"success", "95% low", "95% high", "held-out align", "95% low", "95% high",
		"class prob", "95% low", "95% high", "attribute pass", "success gain / reno", "NFE/img", "ms/img"}}
	for _, name := range r.Order {
		x := r.Methods[name]
		g, ok := x.GainRatio["success"]
		if !ok {
			g = 0
		}
		t.Rows = append(t.Rows, report.Row{Name: name, Values: []float64{x.Success, x.SuccessCI[0], x.SuccessCI[1],
			x.HeldoutAlignment, x.HeldoutAlignmentCI[0], x.HeldoutAlignmentCI[1], x.ClassProb, x.ClassProbCI[0], x.ClassProbCI[1],
			x.AttributePass, g, x.NFEPerImage, 1000 * x.SecondsPerImage}})
	}
	return t
}

// CategoryTable renders the success rate of every prompt category, one row per method, then a row
// for the real test images (each prompt paired with every test image of its class) and a row for
// the real-data ceiling (the real pairs whose attributes pass that also pass the class check),
// when the real images were available.
func (r *Result) CategoryTable() report.Table {
	t := report.Table{Columns: append(append([]string(nil), r.Categories...), "all")}
	for _, name := range r.Order {
		x := r.Methods[name]
		var v []float64
		for _, c := range r.Categories {
			v = append(v, x.CategorySuccess[c].Value)
		}
		t.Rows = append(t.Rows, report.Row{Name: name, Values: append(v, x.Success)})
	}
	if r.Real != nil {
		var v, c []float64
		for _, cat := range r.Categories {
			v = append(v, r.Real.CategorySuccess[cat].Value)
			c = append(c, r.Real.CategoryCeiling[cat])
		}
		t.Rows = append(t.Rows, report.Row{Name: "real test images", Values: append(v, r.Real.Success.Value)},
			report.Row{Name: "real-data ceiling", Values: append(c, r.Real.Ceiling)})
	}
	return t
}

// Text is the figures as a plain-text table.
func (r *Result) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-16s %22s %22s %22s %9s %10s %9s\n", "method", "success [95% CI]", "held-out align [CI]", "class prob [CI]", "attribute", "gain/reno", "ms/img")
	for _, name := range r.Order {
		x := r.Methods[name]
		g := "-"
		if v, ok := x.GainRatio["success"]; ok {
			g = fmt.Sprintf("%.2f", v)
		}
		fmt.Fprintf(&b, "%-16s %6.3f [%.3f, %.3f] %6.3f [%.3f, %.3f] %6.3f [%.3f, %.3f] %9.3f %10s %9.1f\n", name,
			x.Success, x.SuccessCI[0], x.SuccessCI[1], x.HeldoutAlignment, x.HeldoutAlignmentCI[0], x.HeldoutAlignmentCI[1],
			x.ClassProb, x.ClassProbCI[0], x.ClassProbCI[1], x.AttributePass, g, 1000*x.SecondsPerImage)
	}
	fmt.Fprintf(&b, "%d compositional prompts x %d seeds = %d images per method\n", len(r.Prompts), r.Options.SeedsPerPrompt, r.Images)
	b.WriteString("success per category:\n")
	r.CategoryTable().WriteText(&b, "", 18, 22, "%.3f")
	if r.Real != nil {
		fmt.Fprintf(&b, "real test images: every prompt paired with each test image of its class (%d pairs); ceiling: the class check's pass rate among the pairs whose attributes pass\n", r.Real.Pairs)
	}
	return b.String()
}

// Points are the methods on the success-vs-seconds plot.
func (r *Result) Points() []report.Point {
	var pts []report.Point
	for _, name := range r.Order {
		x := r.Methods[name]
		pts = append(pts, report.Point{Name: name, X: x.SecondsPerImage, Y: x.Success})
	}
	return pts
}

// WriteReport writes the success-vs-seconds plot and one grid per prompt (a row per method, the
// first GridSeeds seeds as columns) into dir, and returns the page's table and images.
func (r *Result) WriteReport(dir, prefix string) ([]report.NamedTable, []report.Image, error) {
	tables := []report.NamedTable{{Heading: fmt.Sprintf("Compositional prompts (%d prompts, %d images per method; success = the class and every attribute pass the held-out checks)",
		len(r.Prompts), r.Images), Table: r.Table()},
		{Heading: "Success per prompt category (real test images: every prompt paired with each test image of its class; real-data ceiling: among those real pairs whose attributes pass, the fraction whose class passes too)",
			Table: r.CategoryTable()}}
	var imgs []report.Image
	plot, err := report.ScatterPNG("compositional success vs cost", "seconds per image (log)", "success rate (held-out checks)", r.Points())
	if err != nil {
		return nil, nil, err
	}
	file := prefix + "success_vs_seconds.png"
	if err := ckpt.WriteFileAtomic(filepath.Join(dir, file), plot); err != nil {
		return nil, nil, err
	}
	imgs = append(imgs, report.Image{File: file, Caption: "compositional success rate against seconds per image, every method"})
	k := min(r.Options.GridSeeds, r.Options.SeedsPerPrompt)
	if k == 0 {
		return tables, imgs, nil
	}
	const px = fashion.Side * fashion.Side
	for p, info := range r.Prompts {
		var grid []float32
		for _, name := range r.Order {
			g := r.Methods[name].Grid
			if len(g) < (p+1)*k*px {
				return nil, nil, fmt.Errorf("compositional report: %s has no grid images", name)
			}
			grid = append(grid, g[p*k*px:(p+1)*k*px]...)
		}
		png, err := fashion.GridPNG(grid, len(r.Order)*k, k, 2, 2)
		if err != nil {
			return nil, nil, err
		}
		file := fmt.Sprintf("%sprompt%02d.png", prefix, p)
		if err := ckpt.WriteFileAtomic(filepath.Join(dir, file), png); err != nil {
			return nil, nil, err
		}
		var per []string
		for _, name := range r.Order {
			per = append(per, fmt.Sprintf("%s %.2f", name, r.Methods[name].PerPromptSuccess[p]))
		}
		imgs = append(imgs, report.Image{File: file, Caption: fmt.Sprintf("%q (%s): rows %s; success %s",
			info.Text, info.Band, strings.Join(r.Order, ", "), strings.Join(per, ", "))})
	}
	return tables, imgs, nil
}
