// Command stcmp compares the tensors of two safetensors files written by hypernoise (names,
// shapes and values; metadata such as timings is ignored). It prints "identical" and exits 0 when
// every tensor is bit-identical, else names the first difference and exits 1. The crash test
// (scripts/crashtest.sh) uses it.
package main

import (
	"bytes"
	"fmt"
	"os"
	"sort"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/ckpt"
)

func load(path string) (map[string][]byte, map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	ctx := context.New()
	if _, err := ckpt.Decode(ctx, data); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	vals, shapes := map[string][]byte{}, map[string]string{}
	for v := range ctx.IterVariables() {
		t, err := v.Value()
		if err != nil {
			return nil, nil, err
		}
		_ = t.ConstBytes(func(b []byte) { vals[v.ScopeAndName()] = append([]byte(nil), b...) })
		shapes[v.ScopeAndName()] = v.Shape().String()
	}
	return vals, shapes, nil
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: stcmp A.safetensors B.safetensors")
		os.Exit(2)
	}
	a, sa, err := load(os.Args[1])
	if err == nil {
		var b map[string][]byte
		var sb map[string]string
		if b, sb, err = load(os.Args[2]); err == nil {
			names := make([]string, 0, len(a))
			for n := range a {
				names = append(names, n)
			}
			sort.Strings(names)
			if len(a) != len(b) {
				fmt.Printf("different tensor counts: %d vs %d\n", len(a), len(b))
				os.Exit(1)
			}
			for _, n := range names {
				if sa[n] != sb[n] || !bytes.Equal(a[n], b[n]) {
					fmt.Printf("tensor %s differs (%s vs %s)\n", n, sa[n], sb[n])
					os.Exit(1)
				}
			}
			fmt.Printf("identical (%d tensors)\n", len(a))
			return
		}
	}
	fmt.Fprintln(os.Stderr, "stcmp:", err)
	os.Exit(2)
}
