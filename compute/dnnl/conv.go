package dnnl

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// ConvSpec describes a 2-D convolution of x [N, H, W, C] (NHWC, row-major) with the kernel k
// [KH, KW, C, O] (HWIO) into y [N, OH, OW, O] (NHWC):
//
//	y[n, i, j, o] = Σ_{u, v, c} x[n, i·SH + u·DH - PT, j·SW + v·DW - PL, c] · k[u, v, c, o]
//
// with x taken as 0 outside its extent (strides SH, SW ≥ 1, kernel dilations DH, DW ≥ 1, padding
// PT, PL ≥ 0 before each axis; the padding after follows from OH and OW).
//
// OIHW (Conv2D only) takes the kernel as [O, C, KH, KW] instead, PyTorch's and ONNX's layout: the
// kernel is reordered into the primitive's own layout on every call either way, so this saves the
// caller a transpose.
//
// Bias (Conv2DBias only, set by it) adds a per-output-channel bias b[o] to every y[n, i, j, o] in
// the primitive itself.
type ConvSpec struct {
	N, H, W, C, KH, KW, O, OH, OW int
	SH, SW, DH, DW, PT, PL        int
	OIHW, Bias                    bool
}

// maxConvs bounds the cached convolution primitives (one per ConvSpec and direction); shapes beyond
// it are reported as unsupported, so the caller's own path runs them.
const maxConvs = 512

// convKind is the direction of a cached primitive.
type convKind int

const (
	convForward     convKind = iota // y = conv(x, k)
	convBackData                    // x̄ = the gradient of a convolution with respect to its input
	convBackWeights                 // k̄ = the gradient of a convolution with respect to its kernel
)

// convKey identifies a cached primitive.
type convKey struct {
	spec ConvSpec
	kind convKind
}

// convPrim is a convolution primitive for one ConvSpec and direction, with the reorder that brings
// the caller's kernel (HWIO forward, OHWI backward) into the layout the convolution chose. srcMD and
// dstMD describe the forward convolution's source and destination (NHWC).
type convPrim struct {
	pd, prim, rpd, reorder    uintptr
	srcMD, dstMD, userWMD     []byte  // memory descriptors in Go memory
	biasMD                    []byte  // the bias's (forward with s.Bias), else nil
	wMD, spMD, rspMD          uintptr // owned by pd and rpd
	wBytes, spBytes, rspBytes int
	impl                      string
}

// pads returns the padding after each spatial axis implied by OH and OW, ok=false when that would
// be negative (windows that stop short of x's end by a stride or more).
func (s ConvSpec) pads() (pb, pr int, ok bool) {
	after := func(in, out, k, stride, dil, before int) (int, bool) {
		p := (out-1)*stride + (k-1)*dil + 1 - in - before
		if p < 0 && -p < stride { // the windows stop short of the end: no padding gives the same count
			p = 0
		}
		return p, p >= 0 // oneDNN 2.6 refuses padding that crops x's end
	}
	pb, ok1 := after(s.H, s.OH, s.KH, s.SH, s.DH, s.PT)
	pr, ok2 := after(s.W, s.OW, s.KW, s.SW, s.DW, s.PL)
	return pb, pr, ok1 && ok2
}

func (s ConvSpec) valid() bool {
	return s.N > 0 && s.H > 0 && s.W > 0 && s.C > 0 && s.KH > 0 && s.KW > 0 && s.O > 0 && s.OH > 0 && s.OW > 0 &&
		s.SH > 0 && s.SW > 0 && s.DH > 0 && s.DW > 0 && s.PT >= 0 && s.PL >= 0
}

// ConvImpl names the oneDNN kernel that runs s forward ("" when oneDNN does not run it).
func (l *Lib) ConvImpl(s ConvSpec) string {
	if p := l.conv(convKey{s, convForward}); p != nil {
		return p.impl
	}
	return ""
}

// conv returns the cached primitive for key, creating it on first use; nil when oneDNN does not run
// it.
func (l *Lib) conv(key convKey) *convPrim {
	l.convMu.Lock()
	defer l.convMu.Unlock()
	if p, ok := l.convs[key]; ok {
		return p
	}
	if len(l.convs) >= maxConvs {
		return nil
	}
	p, err := l.newConv(key.spec, key.kind)
	if err != nil {
		p = nil
	}
	l.convs[key] = p
	return p
}

func statusErr(what string, st int32) error {
	if st == 0 {
		return nil
	}
	return fmt.Errorf("dnnl: %s returned status %d", what, st)
}

// kernelTag is the layout of the caller's kernel for s in the direction kind: OIHW when s says so
// (forward only), else the direction's own (userTag).
func (s ConvSpec) kernelTag(kind convKind) (int32, error) {
	if !s.OIHW {
		return userTag[kind], nil
	}
	if kind != convForward {
		return 0, fmt.Errorf("dnnl: an OIHW kernel is for the forward convolution only")
	}
	return tagOIHW, nil
}

// newConv creates the primitives for s in the direction kind.
func (l *Lib) newConv(s ConvSpec, kind convKind) (*convPrim, error) {
	if !s.valid() {
		return nil, fmt.Errorf("dnnl: invalid convolution %+v", s)
	}
	pb, pr, ok := s.pads()
	if !ok {
		return nil, fmt.Errorf("dnnl: %+v would need negative padding", s)
	}
	p, anyWMD, err := l.convDescs(s, kind)
	if err != nil {
		return nil, err
	}
	g := convGeom{strides: dims{int64(s.SH), int64(s.SW)}, dil: dims{int64(s.DH - 1), int64(s.DW - 1)},
		padL: dims{int64(s.PT), int64(s.PL)}, padR: dims{int64(pb), int64(pr)}}
	var attr uintptr
	if err := statusErr("dnnl_primitive_attr_create", l.api.attrCreate(&attr)); err != nil {
		return nil, err
	}
	defer l.api.attrDestroy(attr)
	// Scratchpads are passed in on each call, so that one primitive may run on several threads at once.
	if err := statusErr("dnnl_primitive_attr_set_scratchpad_mode", l.api.attrSetScratchpadMode(attr, scratchpadUser)); err != nil {
		return nil, err
	}
	if err := l.convPD(p, kind, anyWMD, g, attr); err != nil {
		return nil, err
	}
	if err := l.convPrimitive(p, s, kind); err != nil {
		return nil, err
	}
	if err := l.weightsReorder(p, kind, attr); err != nil {
		return nil, err // the convolution primitive stays allocated: at most maxConvs of them
	}
	return p, nil
}

// convGeom is a convolution's strides, dilations (oneDNN counts them from 0) and paddings.
type convGeom struct{ strides, dil, padL, padR dims }

// convDescs returns p with the memory descriptors of s's source and destination (NHWC), of the
// caller's kernel and of the bias (forward with s.Bias), and a kernel descriptor in the "any"
// layout, for the primitive to choose its own.
func (l *Lib) convDescs(s ConvSpec, kind convKind) (p *convPrim, anyWMD []byte, err error) {
	wTag, err := s.kernelTag(kind)
	if err != nil {
		return nil, nil, err
	}
	p = &convPrim{srcMD: make([]byte, memoryDescBytes), dstMD: make([]byte, memoryDescBytes),
		userWMD: make([]byte, memoryDescBytes)}
	anyWMD = make([]byte, memoryDescBytes)
	src, wgt, dst := dims{int64(s.N), int64(s.C), int64(s.H), int64(s.W)},
		dims{int64(s.O), int64(s.C), int64(s.KH), int64(s.KW)}, dims{int64(s.N), int64(s.O), int64(s.OH), int64(s.OW)}
	for _, d := range []struct {
		md   []byte
		dims *dims
		tag  int32
	}{{p.srcMD, &src, tagNHWC}, {p.userWMD, &wgt, wTag}, {anyWMD, &wgt, tagAny}, {p.dstMD, &dst, tagNHWC}} {
		if err := statusErr("dnnl_memory_desc_init_by_tag", l.api.memoryDescInitByTag(unsafe.Pointer(&d.md[0]), 4, d.dims, dataF32, d.tag)); err != nil {
			return nil, nil, err
		}
	}
	if s.Bias {
		if kind != convForward {
			return nil, nil, fmt.Errorf("dnnl: a bias is for the forward convolution only")
		}
		p.biasMD = make([]byte, memoryDescBytes)
		bd := dims{int64(s.O)}
		if err := statusErr("dnnl_memory_desc_init_by_tag (bias)", l.api.memoryDescInitByTag(unsafe.Pointer(&p.biasMD[0]), 1, &bd, dataF32, tagA)); err != nil {
			return nil, nil, err
		}
	}
	return p, anyWMD, nil
}

// convPD sets p.pd, the primitive descriptor of the convolution in the direction kind: the
// forward one, or a backward one created with the forward one as its hint.
func (l *Lib) convPD(p *convPrim, kind convKind, anyWMD []byte, g convGeom, attr uintptr) error {
	a := l.api
	defer runtime.KeepAlive(anyWMD)
	var biasMD unsafe.Pointer
	if p.biasMD != nil {
		biasMD = unsafe.Pointer(&p.biasMD[0])
	}
	prop := int32(propForwardInfer)
	if kind != convForward {
		prop = propForwardTrain
	}
	desc := make([]byte, convDescBytes)
	if err := statusErr("dnnl_dilated_convolution_forward_desc_init", a.dilatedConvFwdInit(unsafe.Pointer(&desc[0]),
		prop, convDirect, unsafe.Pointer(&p.srcMD[0]), unsafe.Pointer(&anyWMD[0]), biasMD,
		unsafe.Pointer(&p.dstMD[0]), &g.strides, &g.dil, &g.padL, &g.padR)); err != nil {
		return err
	}
	if err := statusErr("dnnl_primitive_desc_create", a.primitiveDescCreate(&p.pd, unsafe.Pointer(&desc[0]), attr, l.engine, 0)); err != nil {
		return err
	}
	if kind == convForward {
		return nil
	}
	hint := p.pd
	defer a.primitiveDescDestroy(hint)
	bwd := make([]byte, convDescBytes)
	var st int32
	if kind == convBackData {
		st = a.dilatedConvBwdDataInit(unsafe.Pointer(&bwd[0]), convDirect, unsafe.Pointer(&p.srcMD[0]),
			unsafe.Pointer(&anyWMD[0]), unsafe.Pointer(&p.dstMD[0]), &g.strides, &g.dil, &g.padL, &g.padR)
	} else {
		st = a.dilatedConvBwdWeightsInit(unsafe.Pointer(&bwd[0]), convDirect, unsafe.Pointer(&p.srcMD[0]),
			unsafe.Pointer(&anyWMD[0]), nil, unsafe.Pointer(&p.dstMD[0]), &g.strides, &g.dil, &g.padL, &g.padR)
	}
	if err := statusErr("dnnl_dilated_convolution_backward_*_desc_init", st); err != nil {
		return err
	}
	p.pd = 0
	return statusErr("dnnl_primitive_desc_create (backward)", a.primitiveDescCreate(&p.pd, unsafe.Pointer(&bwd[0]), attr, l.engine, hint))
}

// convPrimitive reads from p.pd the kernel's name, the layout the primitive chose for the kernel
// (its gradient, backward-weights) and the scratchpad, and creates the primitive.
func (l *Lib) convPrimitive(p *convPrim, s ConvSpec, kind convKind) error {
	a := l.api
	var impl *byte
	if a.primitiveDescQueryImpl(p.pd, queryImplInfoStr, 0, &impl) == 0 && impl != nil {
		p.impl = cString(impl)
	}
	wQuery := int32(queryWeightsMD)
	if kind == convBackWeights {
		wQuery = queryDiffWeightsMD
	}
	p.wMD = a.primitiveDescQueryMD(p.pd, wQuery, 0)
	p.spMD = a.primitiveDescQueryMD(p.pd, queryScratchpadMD, 0)
	if p.wMD == 0 || p.spMD == 0 {
		a.primitiveDescDestroy(p.pd)
		return fmt.Errorf("dnnl: convolution %+v: no weights or scratchpad descriptor", s)
	}
	p.wBytes, p.spBytes = int(a.memoryDescGetSize(p.wMD)), int(a.memoryDescGetSize(p.spMD))
	if err := statusErr("dnnl_primitive_create", a.primitiveCreate(&p.prim, p.pd)); err != nil {
		a.primitiveDescDestroy(p.pd)
		return err
	}
	return nil
}

// weightsReorder creates p's reorder, which brings the caller's kernel into the primitive's layout,
// or (kernel gradient) the primitive's result into the caller's layout, and its scratchpad size.
func (l *Lib) weightsReorder(p *convPrim, kind convKind, attr uintptr) error {
	a := l.api
	var st int32
	if kind == convBackWeights {
		st = a.reorderDescCreateToGo(&p.rpd, p.wMD, l.engine, unsafe.Pointer(&p.userWMD[0]), l.engine, attr)
	} else {
		st = a.reorderDescCreate(&p.rpd, unsafe.Pointer(&p.userWMD[0]), l.engine, p.wMD, l.engine, attr)
	}
	if err := statusErr("dnnl_reorder_primitive_desc_create", st); err != nil {
		return err
	}
	p.rspMD = a.primitiveDescQueryMD(p.rpd, queryScratchpadMD, 0)
	if p.rspMD != 0 {
		p.rspBytes = int(a.memoryDescGetSize(p.rspMD))
	}
	return statusErr("dnnl_primitive_create (reorder)", a.primitiveCreate(&p.reorder, p.rpd))
}

// cString copies a NUL-terminated C string.
func cString(p *byte) string {
	var b []byte
	for q := unsafe.Pointer(p); *(*byte)(q) != 0; q = unsafe.Add(q, 1) {
		b = append(b, *(*byte)(q))
	}
	return string(b)
}

// userTag is the layout of the caller's kernel in each direction: HWIO [KH, KW, C, O] forward, OHWI
// [O, KH, KW, C] backward (the transposed convolution's natural [Cin, Kpos·Cout] matrix).
var userTag = [...]int32{convForward: tagHWIO, convBackData: tagOHWI, convBackWeights: tagHWIO}

// scratchPool holds byte buffers for the reordered kernel and the scratchpads.
var scratchPool sync.Pool

// aligned64 returns n bytes of buf starting at a 64-byte boundary (buf must have n+63 bytes).
func aligned64(buf []byte, n int) []byte {
	off := int((64 - uintptr(unsafe.Pointer(&buf[0]))%64) % 64)
	return buf[off : off+n]
}

// Conv2D computes y = conv(x, k) as described by s (see ConvSpec; k is HWIO, or OIHW with s.OIHW) on
// the calling thread, on one core.
// It returns false without touching y when oneDNN does not run s (the caller computes it another
// way), and an error when a slice is too short or oneDNN fails.
func (l *Lib) Conv2D(s ConvSpec, y, x, k []float32) (bool, error) {
	s.Bias = false
	return l.run(convKey{s, convForward}, x, y, k)
}

// ConvBackwardData2D computes the gradient of the convolution s with respect to its input,
//
//	x̄[n, h, w, c] = Σ ȳ[n, i, j, o] · k[o, u, v, c] over i·SH + u·DH - PT = h, j·SW + v·DW - PL = w,
//
// for ȳ [N, OH, OW, O] and the kernel k as [O, KH, KW, C] (OHWI): the transposed convolution, which
// scatters each ȳ entry through the kernel. Like Conv2D it returns false when oneDNN does not run s.
func (l *Lib) ConvBackwardData2D(s ConvSpec, xbar, ybar, k []float32) (bool, error) {
	s.Bias = false
	return l.run(convKey{s, convBackData}, xbar, ybar, k)
}

// Conv2DBias is Conv2D followed by y[n, i, j, o] += bias[o] (bias has s.O values), in the
// primitive.
func (l *Lib) Conv2DBias(s ConvSpec, y, x, k, bias []float32) (bool, error) {
	s.Bias = true
	if len(bias) < s.O {
		return false, fmt.Errorf("dnnl: convolution %+v with a bias of %d values", s, len(bias))
	}
	return l.run(convKey{s, convForward}, x, y, k, bias...)
}

// ConvBackwardWeights2D computes the gradient of the convolution s with respect to its kernel,
//
//	k̄[u, v, c, o] = Σ_{n, i, j} x[n, i·SH + u·DH - PT, j·SW + v·DW - PL, c] · ȳ[n, i, j, o]
//
// (HWIO, like Conv2D's kernel) for x [N, H, W, C] and ȳ [N, OH, OW, O]. Like Conv2D it returns false
// when oneDNN does not run s.
func (l *Lib) ConvBackwardWeights2D(s ConvSpec, kbar, x, ybar []float32) (bool, error) {
	s.Bias = false
	return l.run(convKey{s, convBackWeights}, x, ybar, kbar)
}

// run executes the primitive for key with the forward convolution's source src, destination dst and
// kernel wgt (each the operand or the gradient, by direction; the gradient is written), and the
// bias (forward with key.spec.Bias).
func (l *Lib) run(key convKey, src, dst, wgt []float32, bias ...float32) (bool, error) {
	return l.runKernel(key, src, dst, Kernel{Data: wgt}, false, bias)
}

// runKernel is run with the kernel k; with reuse (forward and backward-data only) the kernel is
// taken from its reordered copy (packedCache.acquire) when there is room for one.
func (l *Lib) runKernel(key convKey, src, dst []float32, k Kernel, reuse bool, bias []float32) (bool, error) {
	wgt := k.Data
	s := key.spec
	if !s.valid() || len(src) < s.N*s.H*s.W*s.C || len(wgt) < s.KH*s.KW*s.C*s.O || len(dst) < s.N*s.OH*s.OW*s.O {
		return false, fmt.Errorf("dnnl: convolution %+v with slices of %d, %d, %d values", s, len(src), len(wgt), len(dst))
	}
	p := l.conv(key)
	if p == nil {
		return false, nil
	}
	bp, region := scratchRegions(p)
	stream, err := l.stream()
	if err != nil {
		return false, err
	}
	l.oneThread(func() {
		packed := false
		if reuse && key.kind != convBackWeights && PackedBudget.Load() > 0 {
			var e *packedCopy
			e, err = l.packed.acquire(p, k, func(to unsafe.Pointer) error { return l.reorderKernel(p, stream, wgt, to, region[2]) })
			if err != nil {
				return
			}
			if e != nil {
				defer e.mu.RUnlock()
				region[0], packed = e.ptr, true
			}
		}
		err = l.execute(p, key.kind, stream, region, src, dst, wgt, bias, packed)
	})
	l.putStream(stream)
	runtime.KeepAlive(src)
	runtime.KeepAlive(dst)
	runtime.KeepAlive(wgt)
	runtime.KeepAlive(bias)
	scratchPool.Put(bp)
	if err != nil {
		return false, err
	}
	return true, nil
}

// scratchRegions returns a pooled buffer (put it back after use) holding, each 64-byte aligned, the
// reordered kernel, the convolution's scratchpad and the reorder's: their starts (nil when empty).
func scratchRegions(p *convPrim) (bp *[]byte, region [3]unsafe.Pointer) {
	parts := []int{p.wBytes, p.spBytes, p.rspBytes}
	total := 0
	for _, n := range parts {
		total += (n+63)/64*64 + 64
	}
	bp, _ = scratchPool.Get().(*[]byte)
	if bp == nil || cap(*bp) < total {
		b := make([]byte, total)
		bp = &b
	}
	buf := (*bp)[:total]
	off := 0
	for i, n := range parts {
		if n > 0 {
			region[i] = unsafe.Pointer(&aligned64(buf[off:], n)[0])
		}
		off += (n+63)/64*64 + 64
	}
	return bp, region
}

// execute runs p's kernel reorder (unless packed: region[0] already holds the reordered kernel) and convolution (backward-weights: the convolution, then the
// reorder of its result) on stream, over oneDNN memories wrapping the caller's slices and the
// scratch regions (see scratchRegions). It must run on the thread oneThread gives.
func (l *Lib) execute(p *convPrim, kind convKind, stream uintptr, region [3]unsafe.Pointer, src, dst, wgt, bias []float32, packed bool) (err error) {
	a := l.api
	var mx, my, mk, mkb, msp, mrsp, mb uintptr
	defer func() {
		for _, m := range []uintptr{mx, my, mk, mkb, msp, mrsp, mb} {
			if m != 0 {
				a.memoryDestroy(m)
			}
		}
	}()
	for _, m := range []struct {
		mem    *uintptr
		md     []byte
		handle unsafe.Pointer
	}{{&mx, p.srcMD, unsafe.Pointer(&src[0])}, {&my, p.dstMD, unsafe.Pointer(&dst[0])},
		{&mk, p.userWMD, unsafe.Pointer(&wgt[0])}} {
		if err = statusErr("dnnl_memory_create", a.memoryCreateGo(m.mem, unsafe.Pointer(&m.md[0]), l.engine, m.handle)); err != nil {
			return err
		}
	}
	if p.biasMD != nil {
		if err = statusErr("dnnl_memory_create (bias)", a.memoryCreateGo(&mb, unsafe.Pointer(&p.biasMD[0]), l.engine, unsafe.Pointer(&bias[0]))); err != nil {
			return err
		}
	}
	for _, m := range []struct {
		mem    *uintptr
		md     uintptr
		size   int
		handle unsafe.Pointer
	}{{&mkb, p.wMD, 1, region[0]}, {&msp, p.spMD, p.spBytes, region[1]}, {&mrsp, p.rspMD, p.rspBytes, region[2]}} {
		if m.size > 0 {
			if err = statusErr("dnnl_memory_create", a.memoryCreateC(m.mem, m.md, l.engine, m.handle)); err != nil {
				return err
			}
		}
	}
	exec := func(what string, prim uintptr, args []execArg, scratch uintptr) error {
		if scratch != 0 {
			args = append(args, execArg{arg: argScratchpad, mem: scratch})
		}
		return statusErr("dnnl_primitive_execute ("+what+")", a.primitiveExecute(prim, stream, int32(len(args)), unsafe.Pointer(&args[0])))
	}
	switch kind {
	case convForward:
		if !packed {
			err = exec("kernel reorder", p.reorder, []execArg{{arg: argSrc, mem: mk}, {arg: argDst, mem: mkb}}, mrsp)
		}
		if err == nil {
			args := []execArg{{arg: argSrc, mem: mx}, {arg: argWeights, mem: mkb}, {arg: argDst, mem: my}}
			if mb != 0 {
				args = append(args, execArg{arg: argBias, mem: mb})
			}
			err = exec("convolution", p.prim, args, msp)
		}
	case convBackData:
		if !packed {
			err = exec("kernel reorder", p.reorder, []execArg{{arg: argSrc, mem: mk}, {arg: argDst, mem: mkb}}, mrsp)
		}
		if err == nil {
			err = exec("backward data", p.prim, []execArg{{arg: argDiffSrc, mem: mx}, {arg: argWeights, mem: mkb}, {arg: argDiffDst, mem: my}}, msp)
		}
	case convBackWeights:
		if err = exec("backward weights", p.prim, []execArg{{arg: argSrc, mem: mx}, {arg: argDiffWeights, mem: mkb}, {arg: argDiffDst, mem: my}}, msp); err == nil {
			err = exec("kernel gradient reorder", p.reorder, []execArg{{arg: argSrc, mem: mkb}, {arg: argDst, mem: mk}}, mrsp)
		}
	}
	return err
}

// reorderKernel reorders the caller's kernel wgt into p's layout at to (p.wBytes bytes), with the
// reorder's scratchpad at rsp, on stream. It must run on the thread oneThread gives.
func (l *Lib) reorderKernel(p *convPrim, stream uintptr, wgt []float32, to, rsp unsafe.Pointer) (err error) {
	a := l.api
	var mk, mkb, mrsp uintptr
	defer func() {
		for _, m := range []uintptr{mk, mkb, mrsp} {
			if m != 0 {
				a.memoryDestroy(m)
			}
		}
	}()
	if err = statusErr("dnnl_memory_create", a.memoryCreateGo(&mk, unsafe.Pointer(&p.userWMD[0]), l.engine, unsafe.Pointer(&wgt[0]))); err != nil {
		return err
	}
	if err = statusErr("dnnl_memory_create", a.memoryCreateC(&mkb, p.wMD, l.engine, to)); err != nil {
		return err
	}
	args := []execArg{{arg: argSrc, mem: mk}, {arg: argDst, mem: mkb}}
	if p.rspBytes > 0 {
		if err = statusErr("dnnl_memory_create", a.memoryCreateC(&mrsp, p.rspMD, l.engine, rsp)); err != nil {
			return err
		}
		args = append(args, execArg{arg: argScratchpad, mem: mrsp})
	}
	err = statusErr("dnnl_primitive_execute (kernel reorder)", a.primitiveExecute(p.reorder, stream, int32(len(args)), unsafe.Pointer(&args[0])))
	runtime.KeepAlive(wgt)
	return err
}
