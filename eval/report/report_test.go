package report

import (
	"bytes"
	"image/png"
	"math"
	"strings"
	"testing"
)

func TestScatterPNG(t *testing.T) {
	data, err := ScatterPNG("t", "seconds", "reward", []Point{{"base", 0.001, -2}, {"reno", 0.2, -0.1}})
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 300 || b.Dy() < 200 {
		t.Errorf("plot is too small: %v", b)
	}
	if _, err := ScatterPNG("t", "x", "y", []Point{{"zero", 0, 1}}); err == nil || !strings.Contains(err.Error(), "log axis") {
		t.Errorf("x=0 on a log axis: err = %v", err)
	}
	if _, err := ScatterPNG("t", "x", "y", nil); err == nil {
		t.Error("no points should be an error")
	}
}

func TestHTMLEscapesAndShowsFigures(t *testing.T) {
	page, err := HTML(Page{
		Title:  "Eval <1>",
		Tables: []NamedTable{{Heading: "all", Table: Table{Columns: []string{"reward"}, Rows: []Row{{"base", []float64{-1.23456}}}}}},
		Images: []Image{{File: "base.png", Caption: "base"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := string(page)
	for _, want := range []string{"Eval &lt;1&gt;", "-1.235", `src="base.png"`, "<td>base</td>"} {
		if !strings.Contains(s, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestCurvesPNG(t *testing.T) {
	y := []float64{3, 2, 1, 0.5, 0.25}
	data, err := CurvesPNG("loss", "step", "loss", []Series{{"loss", y}, {"reward", []float64{0, 1, 2, 3, 4}}}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(data)); err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if _, err := CurvesPNG("x", "x", "y", nil, 1); err == nil {
		t.Error("no series should be an error")
	}
}

// TestTableWriteText: a header, then one line per row, names left-aligned, values right-aligned.
func TestTableWriteText(t *testing.T) {
	tb := Table{Columns: []string{"a", "bb"}, Rows: []Row{{Name: "base", Values: []float64{0.5, 12.25}}, {Name: "reno", Values: []float64{1, -0.125}}}}
	var b strings.Builder
	tb.WriteText(&b, "method", 7, 6, "%.2f")
	want := "method       a     bb\nbase      0.50  12.25\nreno      1.00  -0.12\n"
	if b.String() != want {
		t.Fatalf("got\n%q\nwant\n%q", b.String(), want)
	}
	// A figure the model cannot give (NaN: no held-out classifier) is a dash, in text and HTML.
	b.Reset()
	Table{Columns: []string{"FD"}, Rows: []Row{{Name: "base", Values: []float64{math.NaN()}}}}.WriteText(&b, "m", 5, 4, "%.2f")
	if want := "m       FD\nbase     -\n"; b.String() != want {
		t.Errorf("NaN cell: got %q, want %q", b.String(), want)
	}
	page, err := HTML(Page{Title: "t", Tables: []NamedTable{{Heading: "h", Table: Table{Columns: []string{"FD"}, Rows: []Row{{"base", []float64{math.NaN()}}}}}}})
	if err != nil || strings.Contains(string(page), "NaN") || !strings.Contains(string(page), "<td>-</td>") {
		t.Errorf("NaN cell in HTML: %v; want a dash, no NaN", err)
	}
}
