//go:build !linux

package discover

// hostLocalAddrs lists interface addresses. Outside Linux the temporary and
// deprecated flags are not read, so the choice prefers EUI-64-looking ids.
func hostLocalAddrs() ([]LocalAddr, error) {
	return interfaceAddrs()
}
