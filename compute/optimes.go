package compute

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
)

// OpTime is the time spent in one kind of backend op, and how many ran.
type OpTime struct {
	Op      string        `json:"op"`
	Time    time.Duration `json:"ns"`
	Count   int           `json:"count"`
	Percent float64       `json:"percent"`
}

var (
	opTimesOnce sync.Once
	opTimesMu   sync.Mutex
	opTimes     = map[string]time.Duration{}
	opCounts    = map[string]int{}
)

// EnableOpTimes makes every pure-Go backend (patched or not) time each op it executes, from now on, for
// OpTimes. It costs two clock reads and a lock per op; for profiling only.
func EnableOpTimes() {
	installFastDot()
	installFastOps()
	installPadNode()
	opTimesOnce.Do(func() {
		for op := range simplegoNodeExecutors {
			ex := simplegoNodeExecutors[op]
			if ex == nil {
				continue
			}
			simplegoNodeExecutors[op] = func(b *simplego.Backend, n *simplego.Node, in []*simplego.Buffer, owned []bool) (*simplego.Buffer, error) {
				start := time.Now()
				out, err := ex(b, n, in, owned)
				d := time.Since(start)
				name := opName(backends.OpType(op), n)
				if opTimesShapes {
					name += " " + shapeKey(b, in, out)
				}
				opTimesMu.Lock()
				opTimes[name] += d
				opCounts[name]++
				opTimesMu.Unlock()
				return out, err
			}
		}
	})
}

// opTimesShapes (environment HN_OPTIMES_SHAPES=1) splits OpTimes' rows by the op's operand and
// output shapes.
var opTimesShapes = os.Getenv("HN_OPTIMES_SHAPES") == "1"

// shapeKey is "in1,in2->out" with each shape's dimensions, for the per-shape profile.
func shapeKey(b *simplego.Backend, in []*simplego.Buffer, out *simplego.Buffer) string {
	var sb strings.Builder
	for i, x := range append(in, out) {
		if i == len(in) {
			sb.WriteString("->")
		} else if i > 0 {
			sb.WriteString(",")
		}
		if x == nil {
			sb.WriteString("?")
			continue
		}
		if s, err := b.BufferShape(x); err == nil {
			sb.WriteString(fmt.Sprint(s.Dimensions))
		}
	}
	return sb.String()
}

// OpTimes returns the time per op kind since EnableOpTimes, largest first, and resets the counters.
func OpTimes() []OpTime {
	opTimesMu.Lock()
	defer opTimesMu.Unlock()
	var total time.Duration
	var out []OpTime
	for op, d := range opTimes {
		if opCounts[op] > 0 {
			out = append(out, OpTime{Op: op, Time: d, Count: opCounts[op]})
			total += d
		}
		delete(opTimes, op)
		delete(opCounts, op)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time > out[j].Time })
	for i := range out {
		if total > 0 {
			out[i].Percent = 100 * float64(out[i].Time) / float64(total)
		}
	}
	return out
}

// opName is the op kind's name; this package's own nodes, which all carry OpTypePad (see fastpad.go),
// are named by what they compute.
func opName(op backends.OpType, n *simplego.Node) string {
	if op != backends.OpTypePad {
		return op.String()
	}
	switch getNodeData(n).(type) {
	case *im2colNodeData:
		return "Pad:im2col"
	case *col2imNodeData:
		return "Pad:col2im"
	case *convGemmNodeData:
		if getNodeData(n).(*convGemmNodeData).bias {
			return "Pad:conv(im2col+GEMM)+bias"
		}
		return "Pad:conv(im2col+GEMM)"
	case *convScatterNodeData:
		return "Pad:conv(GEMM+col2im)"
	case *convBackWeightsData:
		return "Pad:conv(kernel gradient)"
	case *sigmoidGradNodeData:
		return "Pad:LogisticGrad"
	case *siluGradNodeData:
		return "Pad:SiLUGrad"
	case *normNodeData:
		if getNodeData(n).(*normNodeData).nhwc != nil {
			return "Pad:Norm(to NHWC)"
		}
		return "Pad:Norm"
	case *softmaxNodeData:
		return "Pad:Softmax"
	case *attnNodeData:
		return "Pad:Attention"
	case *gatherRowsData:
		return "Pad:GatherRows"
	case *upInterleaveData:
		return "Pad:UpConvInterleave"
	case *phaseKernelData:
		return "Pad:UpConvKernels"
	}
	return "Pad"
}
