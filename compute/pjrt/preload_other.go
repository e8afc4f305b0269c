//go:build !(linux || darwin || freebsd)

package pjrt

// Preload loads nothing on systems without dlopen.
func Preload(dirs []string) (loaded, failed []string) { return nil, nil }
