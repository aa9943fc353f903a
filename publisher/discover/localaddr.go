package discover

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Address flags in /proc/net/if_inet6 (linux/if_addr.h).
const (
	ifaFTemporary  = 0x01
	ifaFDadFailed  = 0x08
	ifaFDeprecated = 0x20
	ifaFTentative  = 0x40
)

// parseIfInet6 reads Linux's /proc/net/if_inet6: per line the address as 32
// hex digits, then interface index, prefix length, scope and flags in hex,
// then the interface name. Addresses still in duplicate address detection
// or that failed it are left out.
func parseIfInet6(r io.Reader) ([]LocalAddr, error) {
	var out []LocalAddr
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) < 5 || len(f[0]) != 32 {
			return nil, fmt.Errorf("if_inet6 line %d: %q: want address and 4 hex fields", n, sc.Text())
		}
		var b [16]byte
		if _, err := hex.Decode(b[:], []byte(f[0])); err != nil {
			return nil, fmt.Errorf("if_inet6 line %d: address: %w", n, err)
		}
		flags, err := strconv.ParseUint(f[4], 16, 32)
		if err != nil {
			return nil, fmt.Errorf("if_inet6 line %d: flags: %w", n, err)
		}
		if flags&(ifaFDadFailed|ifaFTentative) != 0 {
			continue
		}
		out = append(out, LocalAddr{
			Addr:       netip.AddrFrom16(b),
			Temporary:  flags&ifaFTemporary != 0,
			Deprecated: flags&ifaFDeprecated != 0,
		})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read if_inet6: %w", err)
	}
	return out, nil
}

// interfaceAddrs lists interface addresses without flags (portable).
func interfaceAddrs() ([]LocalAddr, error) {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list interface addresses: %w", err)
	}
	var out []LocalAddr
	for _, a := range as {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		if ip, ok := netip.AddrFromSlice(n.IP); ok {
			out = append(out, LocalAddr{Addr: ip.Unmap()})
		}
	}
	return out, nil
}
