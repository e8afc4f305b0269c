package finitejson

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

type inner struct {
	Reward float64 `json:"reward"`
	FD     float32 `json:"fd,omitempty"`
}

type Embedded struct {
	Kind string `json:"kind"`
}

type report struct {
	Embedded
	Name    string             `json:"name"`
	Methods []inner            `json:"methods"`
	ByName  map[string]float64 `json:"by_name"`
	Opt     *inner             `json:"opt,omitempty"`
	Skip    float64            `json:"-"`
	When    time.Time          `json:"when"`
	Plain   float64
	Raw     json.RawMessage `json:"raw"`
	Bytes   []byte          `json:"bytes"`
	Arr     [2]float32      `json:"arr"`
	hidden  int
}

func sample(bad float64) report {
	return report{Embedded: Embedded{"k"}, Name: "x", Methods: []inner{{0.5, 0.1}, {bad, 3}},
		ByName: map[string]float64{"b": 1, "a": bad}, When: time.Unix(5, 0).UTC(), Plain: 2,
		Raw: json.RawMessage(`{"z":1}`), Bytes: []byte("hi"), Arr: [2]float32{1.5, float32(bad)}, Skip: bad, hidden: 1}
}

// TestSameAsEncodingJSON: with finite values the output is byte for byte encoding/json's.
func TestSameAsEncodingJSON(t *testing.T) {
	v := sample(0.25)
	want, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got, nulls, err := MarshalIndent(v, "", "  ")
	if err != nil || len(nulls) != 0 || string(got) != string(want) {
		t.Fatalf("got %s (nulls %v, err %v), want %s", got, nulls, err, want)
	}
}

// TestNonFiniteAreNull: NaN and ±Inf become null, their paths are listed, and the rest is kept.
func TestNonFiniteAreNull(t *testing.T) {
	for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		got, nulls, err := MarshalIndent(sample(bad), "", " ")
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"methods[1].reward", "by_name.a", "arr[1]"}
		if !slices.Equal(nulls, want) {
			t.Errorf("bad=%g: nulls %v, want %v", bad, nulls, want)
		}
		var back map[string]any
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatal(err)
		}
		m := back["methods"].([]any)[1].(map[string]any)
		if m["reward"] != nil || m["fd"] != 3.0 || back["by_name"].(map[string]any)["b"] != 1.0 {
			t.Errorf("bad=%g: %s", bad, got)
		}
	}
	if n := Note([]string{"a", "b", "c", "d", "e", "f", "g"}); n == "" || !strings.Contains(n, "and 2 more") {
		t.Errorf("note %q", n)
	}
}
