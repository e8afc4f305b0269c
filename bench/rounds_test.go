package bench

import (
	"errors"
	"strings"
	"testing"
)

// TestForwardRounds: the rounds alternate ours then onnxruntime's, keep the first round as given,
// and report the median of the ratios; an error or a non-positive time stops them with the rounds
// done so far.
func TestForwardRounds(t *testing.T) {
	var calls []string
	oursMS := []float64{30, 33, 31, 40}
	ortMS := []float64{30, 30, 31, 20}
	i, j := 0, 0
	ours := func() (float64, error) { calls = append(calls, "ours"); i++; return oursMS[i-1], nil }
	ort := func() (float64, error) { calls = append(calls, "ort"); j++; return ortMS[j-1], nil }
	first := ForwardRound{OursMS: 32, ORTMS: 29, Ratio: 32.0 / 29}
	rounds, med, err := forwardRounds(5, first, ours, ort)
	if err != nil {
		t.Fatal(err)
	}
	if len(rounds) != 5 || rounds[0] != first || strings.Join(calls, ",") != "ours,ort,ours,ort,ours,ort,ours,ort" {
		t.Fatalf("rounds %v, calls %v", rounds, calls)
	}
	// ratios 1.103, 1.0, 1.1, 1.0, 2.0: median 1.1
	if med != 1.1 || rounds[4].Ratio != 2 {
		t.Fatalf("median %v, last ratio %v; want 1.1 and 2", med, rounds[4].Ratio)
	}
	if r, _, err := forwardRounds(1, first, ours, ort); err != nil || len(r) != 1 {
		t.Fatalf("one round: %v, %v", r, err)
	}
	boom := errors.New("node died")
	rounds, _, err = forwardRounds(4, first, func() (float64, error) { return 30, nil }, func() (float64, error) { return 0, boom })
	if !errors.Is(err, boom) || len(rounds) != 1 {
		t.Fatalf("an onnxruntime failure: rounds %v, err %v", rounds, err)
	}
	_, _, err = forwardRounds(2, first, func() (float64, error) { return 0, nil }, func() (float64, error) { return 30, nil })
	if err == nil || !strings.Contains(err.Error(), "not positive") {
		t.Fatalf("a zero time: err %v", err)
	}
}

// TestTimeForwardsWarmup: timeForwards makes 1 + warmup + steps calls, reports the first call's
// seconds, and takes the median over the last steps only (the warm-up calls, here the slowest,
// are not counted).
func TestTimeForwardsWarmup(t *testing.T) {
	for _, warmup := range []int{0, 4} {
		times := []float64{7}
		for range warmup {
			times = append(times, 50)
		}
		times = append(times, 0.3, 0.1, 0.2) // seconds
		calls := 0
		call := func() (float64, error) {
			d := times[calls]
			calls++
			return d, nil
		}
		first, ms, err := timeForwards(call, warmup, 3, 4)
		if err != nil {
			t.Fatal(err)
		}
		if calls != 1+warmup+3 || first != 7 || ms != 0.2*1e3/4 {
			t.Errorf("warmup %d: %d calls, first %g s, %g ms/image; want %d, 7, 50", warmup, calls, first, ms, 4+warmup)
		}
	}
}
