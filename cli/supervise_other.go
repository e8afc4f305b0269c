//go:build !linux

package cli

import (
	"os"
	"syscall"
)

func supervisedAttr() *syscall.SysProcAttr { return nil }

func peakRSS(*os.ProcessState) int64 { return 0 }
