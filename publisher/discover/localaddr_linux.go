package discover

import (
	"errors"
	"io/fs"
	"os"
)

// hostLocalAddrs reads the host's IPv6 addresses with their flags from
// /proc/net/if_inet6, or lists interfaces without flags when the file is
// missing (IPv6 disabled, restricted /proc).
func hostLocalAddrs() ([]LocalAddr, error) {
	f, err := os.Open("/proc/net/if_inet6")
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return interfaceAddrs()
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseIfInet6(f)
}
