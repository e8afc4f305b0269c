//go:build !(((linux && amd64) || darwin) && cgo && !noxla)

package compute

// xlaMissing says why "xla" is not available in this build.
const xlaMissing = "not compiled into this binary (it needs cgo, i.e. a C compiler, on linux/amd64 or darwin, " +
	"and no noxla build tag)"
