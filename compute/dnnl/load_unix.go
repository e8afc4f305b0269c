//go:build linux || darwin || freebsd

package dnnl

import (
	"fmt"

	"github.com/ebitengine/purego"
)

// version is dnnl_version_t.
type version struct {
	Major, Minor, Patch int32
	Hash                *byte
	CPURuntime          uint32
	GPURuntime          uint32
}

// symbols lists every routine Open binds; a library lacking one is refused.
var symbols = []string{"dnnl_version", "dnnl_sgemm", "dnnl_engine_create", "dnnl_stream_create",
	"dnnl_stream_destroy", "dnnl_memory_desc_init_by_tag", "dnnl_memory_desc_get_size",
	"dnnl_dilated_convolution_forward_desc_init", "dnnl_dilated_convolution_backward_data_desc_init",
	"dnnl_dilated_convolution_backward_weights_desc_init",
	"dnnl_primitive_attr_create",
	"dnnl_primitive_attr_destroy", "dnnl_primitive_attr_set_scratchpad_mode", "dnnl_primitive_desc_create", "dnnl_reorder_primitive_desc_create",
	"dnnl_primitive_desc_query_md", "dnnl_primitive_desc_query", "dnnl_primitive_desc_destroy",
	"dnnl_primitive_create", "dnnl_memory_create", "dnnl_memory_destroy", "dnnl_primitive_execute"}

// Open loads oneDNN at path and binds its routines; it refuses a library that is not oneDNN 2.x with
// the sequential or OpenMP runtime (whose threads it cannot hold to one per call). It returns an
// error, never panics.
func Open(path string) (lib *Lib, err error) {
	defer func() {
		if r := recover(); r != nil {
			lib, err = nil, fmt.Errorf("dnnl: %s: %v", path, r)
		}
	}()
	handle, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, fmt.Errorf("dnnl: cannot load %s: %v", path, err)
	}
	fail := func(format string, args ...any) (*Lib, error) {
		_ = purego.Dlclose(handle)
		return nil, fmt.Errorf("dnnl: %s: "+format, append([]any{path}, args...)...)
	}
	for _, sym := range symbols {
		if _, err := purego.Dlsym(handle, sym); err != nil {
			return fail("does not export %s", sym)
		}
	}
	var versionOf func() *version
	purego.RegisterLibFunc(&versionOf, handle, "dnnl_version")
	v := versionOf()
	if v == nil {
		return fail("dnnl_version returned nothing")
	}
	if v.Major != 2 {
		return fail("oneDNN %d.%d.%d; this package speaks the 2.x C API", v.Major, v.Minor, v.Patch)
	}
	a := &api{}
	lib = &Lib{Path: path, api: a, convs: map[convKey]*convPrim{}, streams: make(chan uintptr, 16)}
	switch v.CPURuntime {
	case runtimeSeq:
		lib.Version = fmt.Sprintf("%d.%d.%d, sequential", v.Major, v.Minor, v.Patch)
	case runtimeOMP:
		// Found among the library's own dependencies (libgomp for Debian's build).
		if _, err := purego.Dlsym(handle, "omp_set_num_threads"); err != nil {
			return fail("uses OpenMP but omp_set_num_threads is not reachable")
		}
		purego.RegisterLibFunc(&a.ompSetNumThreads, handle, "omp_set_num_threads")
		lib.Version = fmt.Sprintf("%d.%d.%d, OpenMP", v.Major, v.Minor, v.Patch)
	default:
		return fail("threading runtime %d cannot be held to one thread per call", v.CPURuntime)
	}
	for sym, fn := range map[string]any{
		"dnnl_sgemm": &a.sgemm, "dnnl_engine_create": &a.engineCreate, "dnnl_stream_create": &a.streamCreate,
		"dnnl_stream_destroy": &a.streamDestroy, "dnnl_memory_desc_init_by_tag": &a.memoryDescInitByTag,
		"dnnl_memory_desc_get_size":                           &a.memoryDescGetSize,
		"dnnl_dilated_convolution_forward_desc_init":          &a.dilatedConvFwdInit,
		"dnnl_dilated_convolution_backward_data_desc_init":    &a.dilatedConvBwdDataInit,
		"dnnl_dilated_convolution_backward_weights_desc_init": &a.dilatedConvBwdWeightsInit,
		"dnnl_primitive_attr_create":                          &a.attrCreate,
		"dnnl_primitive_attr_destroy":                         &a.attrDestroy,
		"dnnl_primitive_attr_set_scratchpad_mode":             &a.attrSetScratchpadMode,
		"dnnl_primitive_desc_create":                          &a.primitiveDescCreate,
		"dnnl_reorder_primitive_desc_create":                  &a.reorderDescCreate,
		"dnnl_primitive_desc_query_md":                        &a.primitiveDescQueryMD,
		"dnnl_primitive_desc_query":                           &a.primitiveDescQueryImpl,
		"dnnl_primitive_desc_destroy":                         &a.primitiveDescDestroy,
		"dnnl_primitive_create":                               &a.primitiveCreate, "dnnl_memory_create": &a.memoryCreateGo,
		"dnnl_memory_destroy": &a.memoryDestroy, "dnnl_primitive_execute": &a.primitiveExecute,
	} {
		purego.RegisterLibFunc(fn, handle, sym)
	}
	purego.RegisterLibFunc(&a.memoryCreateC, handle, "dnnl_memory_create")
	purego.RegisterLibFunc(&a.reorderDescCreateToGo, handle, "dnnl_reorder_primitive_desc_create")
	if st := a.engineCreate(&lib.engine, engineCPU, 0); st != 0 {
		return fail("dnnl_engine_create returned status %d", st)
	}
	return lib, nil
}
