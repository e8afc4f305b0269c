package dnnl

import "unsafe"

// The oneDNN 2.x C API that this package calls, as Go function values bound at load time, and its
// constants (values from Debian 12's oneapi/dnnl/dnnl_types.h, 2.6.3; the 2.x series keeps them).
type api struct {
	sgemm func(transA, transB byte, m, n, k int64, alpha float32, a *float32, lda int64, b *float32, ldb int64,
		beta float32, c *float32, ldc int64) int32
	ompSetNumThreads func(int32) // nil for a sequential build

	engineCreate  func(engine *uintptr, kind int32, index uint64) int32
	streamCreate  func(stream *uintptr, engine uintptr, flags uint32) int32
	streamDestroy func(stream uintptr) int32

	memoryDescInitByTag func(md unsafe.Pointer, ndims int32, dims *dims, dataType int32, tag int32) int32
	memoryDescGetSize   func(md uintptr) uint64
	dilatedConvFwdInit  func(desc unsafe.Pointer, prop, alg int32, src, weights, bias, dst unsafe.Pointer,
		strides, dilates, padL, padR *dims) int32
	dilatedConvBwdDataInit func(desc unsafe.Pointer, alg int32, diffSrc, weights, diffDst unsafe.Pointer,
		strides, dilates, padL, padR *dims) int32
	dilatedConvBwdWeightsInit func(desc unsafe.Pointer, alg int32, src, diffWeights, diffBias, diffDst unsafe.Pointer,
		strides, dilates, padL, padR *dims) int32

	attrCreate             func(attr *uintptr) int32
	attrDestroy            func(attr uintptr) int32
	attrSetScratchpadMode  func(attr uintptr, mode int32) int32
	primitiveDescCreate    func(pd *uintptr, opDesc unsafe.Pointer, attr, engine, hint uintptr) int32
	reorderDescCreate      func(pd *uintptr, srcMD unsafe.Pointer, srcEngine, dstMD, dstEngine, attr uintptr) int32
	reorderDescCreateToGo  func(pd *uintptr, srcMD, srcEngine uintptr, dstMD unsafe.Pointer, dstEngine, attr uintptr) int32
	primitiveDescQueryMD   func(pd uintptr, what, index int32) uintptr
	primitiveDescQueryImpl func(pd uintptr, what, index int32, result **byte) int32
	primitiveDescDestroy   func(pd uintptr) int32
	primitiveCreate        func(p *uintptr, pd uintptr) int32

	memoryCreateGo   func(mem *uintptr, md unsafe.Pointer, engine uintptr, handle unsafe.Pointer) int32 // md in Go memory
	memoryCreateC    func(mem *uintptr, md uintptr, engine uintptr, handle unsafe.Pointer) int32        // md owned by oneDNN
	memoryDestroy    func(mem uintptr) int32
	primitiveExecute func(p uintptr, stream uintptr, nargs int32, args unsafe.Pointer) int32
}

// dims is dnnl_dims_t.
type dims [12]int64

// execArg is dnnl_exec_arg_t.
type execArg struct {
	arg int32
	_   int32
	mem uintptr
}

// Sizes of oneDNN 2.6's dnnl_memory_desc_t (696 bytes) and dnnl_convolution_desc_t (5976), rounded
// up generously so that a later 2.x with larger structures still fits.
const (
	memoryDescBytes = 2048
	convDescBytes   = 16384
)

const (
	engineCPU          = 1   // dnnl_cpu
	streamDefaultFlags = 1   // dnnl_stream_default_flags
	dataF32            = 3   // dnnl_f32
	tagAny             = 1   // dnnl_format_tag_any
	tagA               = 2   // dnnl_a (a 1-D vector)
	tagNHWC            = 20  // dnnl_nhwc
	tagOIHW            = 5   // dnnl_oihw (dnnl_abcd)
	tagHWIO            = 30  // dnnl_hwio
	tagOHWI            = 20  // dnnl_ohwi (the same layout as dnnl_nhwc)
	propForwardInfer   = 96  // dnnl_forward_inference
	propForwardTrain   = 64  // dnnl_forward_training (the hint a backward primitive needs)
	convDirect         = 1   // dnnl_convolution_direct
	queryImplInfoStr   = 8   // dnnl_query_impl_info_str
	queryWeightsMD     = 131 // dnnl_query_weights_md
	queryDiffWeightsMD = 132 // dnnl_query_diff_weights_md
	queryScratchpadMD  = 136 // dnnl_query_scratchpad_md
	scratchpadUser     = 1   // dnnl_scratchpad_mode_user
	argSrc             = 1   // DNNL_ARG_SRC (and DNNL_ARG_FROM)
	argDst             = 17  // DNNL_ARG_DST (and DNNL_ARG_TO)
	argWeights         = 33  // DNNL_ARG_WEIGHTS
	argBias            = 41  // DNNL_ARG_BIAS
	argScratchpad      = 80  // DNNL_ARG_SCRATCHPAD
	argDiffSrc         = 129 // DNNL_ARG_DIFF_SRC
	argDiffDst         = 145 // DNNL_ARG_DIFF_DST
	argDiffWeights     = 161 // DNNL_ARG_DIFF_WEIGHTS
	runtimeSeq         = 1   // DNNL_RUNTIME_SEQ
	runtimeOMP         = 2   // DNNL_RUNTIME_OMP
)
