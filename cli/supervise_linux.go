package cli

import "syscall"

// supervisedAttr makes the child die with its supervisor (kill -9 of the parent included).
func supervisedAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
