//go:build !linux

package cli

import "syscall"

func supervisedAttr() *syscall.SysProcAttr { return nil }
