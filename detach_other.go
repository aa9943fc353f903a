//go:build !windows

package main

import "syscall"

// detachedAttr puts a started process in its own session, so that closing
// the terminal or the file manager does not end it.
func detachedAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }
