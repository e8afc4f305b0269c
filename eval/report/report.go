// Package report renders evaluation results for people: a scatter plot of a quality figure against
// cost on a log axis, PNG image grids, and one self-contained HTML page that shows them.
package report

import (
	"bytes"
	"fmt"
	"html/template"
	"math"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Point is one method on a cost/quality plot.
type Point struct {
	Name string
	X, Y float64
}

// ScatterPNG draws the points with X on a log scale (e.g. seconds per image) and Y linear (e.g.
// mean reward), each labelled by its name, and returns the PNG bytes. Points with X <= 0 are
// refused, since they have no place on a log axis.
func ScatterPNG(title, xLabel, yLabel string, pts []Point) ([]byte, error) {
	if len(pts) == 0 {
		return nil, fmt.Errorf("no points to plot")
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Add(plotter.NewGrid())
	xys := make(plotter.XYs, len(pts))
	labels := make([]string, len(pts))
	minX, maxX := math.Inf(1), math.Inf(-1)
	for i, pt := range pts {
		if !(pt.X > 0) || math.IsInf(pt.X, 0) || math.IsNaN(pt.Y) {
			return nil, fmt.Errorf("point %q has x=%g, y=%g: x must be positive and finite on a log axis", pt.Name, pt.X, pt.Y)
		}
		xys[i] = plotter.XY{X: pt.X, Y: pt.Y}
		labels[i] = " " + pt.Name
		minX, maxX = math.Min(minX, pt.X), math.Max(maxX, pt.X)
	}
	sc, err := plotter.NewScatter(xys)
	if err != nil {
		return nil, err
	}
	sc.GlyphStyle.Shape = draw.CircleGlyph{}
	sc.GlyphStyle.Radius = vg.Points(4)
	lb, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
	if err != nil {
		return nil, err
	}
	p.Add(sc, lb)
	// Leave room for the labels on the right of the last point.
	p.X.Min, p.X.Max = minX/2, maxX*4
	return PlotPNG(p, 7*vg.Inch, 4.5*vg.Inch)
}

// Table is a table of figures: one row per method, one column per metric.
type Table struct {
	Columns []string
	Rows    []Row
}

// WriteText writes t as aligned plain text: a header with the columns, then one line per row, the
// names in nameWidth characters and each value in colWidth with the fmt verb (e.g. "%.3f").
func (t Table) WriteText(b *strings.Builder, corner string, nameWidth, colWidth int, verb string) {
	fmt.Fprintf(b, "%-*s", nameWidth, corner)
	for _, c := range t.Columns {
		fmt.Fprintf(b, " %*s", colWidth, c)
	}
	b.WriteString("\n")
	for _, row := range t.Rows {
		fmt.Fprintf(b, "%-*s", nameWidth, row.Name)
		for _, v := range row.Values {
			cell := "-" // a figure the model cannot give (no held-out classifier, say)
			if !math.IsNaN(v) {
				cell = fmt.Sprintf(verb, v)
			}
			fmt.Fprintf(b, " %*s", colWidth, cell)
		}
		b.WriteString("\n")
	}
}

// Row is one method's figures, in the order of Table.Columns.
type Row struct {
	Name   string
	Values []float64
}

// Image is a picture on the page, by its file name relative to the page, with a caption.
type Image struct {
	File, Caption string
}

// Page is the content of the HTML report.
type Page struct {
	Title   string
	Intro   string // a paragraph of plain text
	Tables  []NamedTable
	Images  []Image
	Footer  string
	JSONRef string // file name of the metrics JSON, linked from the page
}

// NamedTable is a table with a heading.
type NamedTable struct {
	Heading string
	Table   Table
}

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"fmtf": func(v float64) string {
		switch a := math.Abs(v); {
		case math.IsNaN(v):
			return "-"
		case v == 0:
			return "0"
		case a >= 1000 || a < 0.001:
			return fmt.Sprintf("%.3g", v)
		default:
			return fmt.Sprintf("%.4g", v)
		}
	},
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}figure{display:inline-block;margin:.5em;vertical-align:top}
figcaption{font-size:.9em;text-align:center}img{image-rendering:pixelated;border:1px solid #ddd}
</style></head><body>
<h1>{{.Title}}</h1>
<p>{{.Intro}}</p>
{{if .JSONRef}}<p>Machine-readable figures: <a href="{{.JSONRef}}">{{.JSONRef}}</a></p>{{end}}
{{range .Tables}}<h2>{{.Heading}}</h2>
<table><tr><th>method</th>{{range .Table.Columns}}<th>{{.}}</th>{{end}}</tr>
{{range .Table.Rows}}<tr><td>{{.Name}}</td>{{range .Values}}<td>{{fmtf .}}</td>{{end}}</tr>
{{end}}</table>{{end}}
{{range .Images}}<figure><img src="{{.File}}" alt="{{.Caption}}"><figcaption>{{.Caption}}</figcaption></figure>
{{end}}
<p><small>{{.Footer}}</small></p>
</body></html>
`))

// HTML renders the page.
func HTML(p Page) ([]byte, error) {
	var buf bytes.Buffer
	if err := pageTmpl.Execute(&buf, p); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Series is one named curve of a line plot, y[i] at x = i+1 (e.g. a value per training step).
type Series struct {
	Name string
	Y    []float64
}

// CurvesPNG draws each series against its step index, smoothed by a centred moving average of
// width smooth (1: raw), one colour per series, and returns the PNG bytes. Non-finite values are
// left out.
func CurvesPNG(title, xLabel, yLabel string, series []Series, smooth int) ([]byte, error) {
	if len(series) == 0 {
		return nil, fmt.Errorf("no curves to plot")
	}
	smooth = max(smooth, 1)
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	for i, s := range series {
		var xys plotter.XYs
		for j := range s.Y {
			lo, hi := max(0, j-smooth/2), min(len(s.Y), j+smooth/2+1)
			var sum float64
			var n int
			for _, v := range s.Y[lo:hi] {
				if !math.IsNaN(v) && !math.IsInf(v, 0) {
					sum += v
					n++
				}
			}
			if n > 0 {
				xys = append(xys, plotter.XY{X: float64(j + 1), Y: sum / float64(n)})
			}
		}
		if len(xys) == 0 {
			continue
		}
		line, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		line.Color = plotutilColor(i)
		line.Width = vg.Points(1.5)
		p.Add(line)
		p.Legend.Add(s.Name, line)
	}
	return PlotPNG(p, 7*vg.Inch, 4*vg.Inch)
}

// PlotPNG renders p as a PNG image of the given size.
func PlotPNG(p *plot.Plot, width, height vg.Length) ([]byte, error) {
	w, err := p.WriterTo(width, height, "png")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
