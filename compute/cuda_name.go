package compute

// CUDAName is the backend name for XLA on an NVIDIA GPU, its PJRT plugin found by compute/pjrt
// (compiled in with the XLA backend; see cuda.go).
const CUDAName = "cuda"
