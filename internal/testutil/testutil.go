// Package testutil holds helpers that tests across the module share.
package testutil

import (
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/hypernoise/hypernoise/compute"
)

// Backend returns the default compute backend or fails the test.
func Backend(t testing.TB) backends.Backend {
	t.Helper()
	b, err := compute.NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	return b
}
