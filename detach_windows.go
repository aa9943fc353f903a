package main

import (
	"syscall"

	"golang.org/x/sys/windows"
)

// detachedAttr starts a process in its own group with no console.
func detachedAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{CreationFlags: windows.DETACHED_PROCESS | windows.CREATE_NEW_PROCESS_GROUP}
}
