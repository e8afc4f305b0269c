package blas

import "github.com/hypernoise/hypernoise/compute/dnnl"

// oneDNN's matrix product for float32.
//
// When Default finds oneDNN (package dnnl: dnnl_sgemm, 1.3-1.6x OpenBLAS 0.3.21's sgemm on the
// embedded models' narrow products, one thread), float32 products go to it; float64 ones stay on
// OpenBLAS (oneDNN has no dgemm). $HYPERNOISE_DNNL=off keeps everything on OpenBLAS.

// attachDNNL sets l's float32 product to oneDNN's when it loads, else records why not.
func (l *Library) attachDNNL() {
	d, err := dnnl.Default()
	if err != nil {
		l.DNNLWhy = err.Error()
		return
	}
	l.dnnl = d
}
