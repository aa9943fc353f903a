//go:build !unix

package interop

import "os"

// peakRSSKiB is 0 where the system does not report a finished process's
// peak memory through os.ProcessState.
func peakRSSKiB(*os.ProcessState) int64 { return 0 }
