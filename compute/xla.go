//go:build ((linux && amd64) || darwin) && cgo && !noxla

package compute

// The XLA/PJRT backend is compiled in where cgo is available (a C compiler; the PJRT plugin itself is
// loaded at run time). Build with -tags noxla, or CGO_ENABLED=0, to leave it out.

const xlaMissing = ""

func init() {
	knownBackends = append(knownBackends, backendEntry{
		name:  "xla",
		about: "XLA/PJRT on CPU or CUDA, e.g. \"xla:cuda\"; " + xlaHint,
		ctor:  newXLA,
	})
}
