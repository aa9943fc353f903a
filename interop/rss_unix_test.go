//go:build unix

package interop

import (
	"os"
	"syscall"
)

// peakRSSKiB is the peak resident set size of a finished process, in KiB
// (Linux reports ru_maxrss in KiB).
func peakRSSKiB(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss
	}
	return 0
}
