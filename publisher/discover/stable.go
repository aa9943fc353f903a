package discover

import (
	"fmt"
	"net/netip"
)

// ValidateSuffix reports whether s is a usable Options.IPv6Suffix: an
// interface id such as ::10. The error names the value and what to write.
func ValidateSuffix(s string) error {
	_, err := parseSuffix(s)
	return err
}

// parseSuffix parses an IPv6 interface id such as "::10": an IPv6 address
// whose upper 64 bits are zero and lower 64 bits are not.
func parseSuffix(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() || a.Is4In6() || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("ipv6_suffix %q: want an interface id such as ::10", s)
	}
	b := a.As16()
	var hi, lo uint64
	for i := range 8 {
		hi = hi<<8 | uint64(b[i])
		lo = lo<<8 | uint64(b[8+i])
	}
	if hi != 0 {
		return netip.Addr{}, fmt.Errorf("ipv6_suffix %q: only the last 64 bits, the interface id, may be set (e.g. ::10)", s)
	}
	if lo == 0 {
		return netip.Addr{}, fmt.Errorf("ipv6_suffix %q: the interface id must not be zero", s)
	}
	return a, nil
}

// withSuffix puts interface id suffix into a's /64.
func withSuffix(a, suffix netip.Addr) netip.Addr {
	b, s := a.As16(), suffix.As16()
	copy(b[8:], s[8:])
	return netip.AddrFrom16(b)
}

// isEUI64 reports whether a's interface id looks derived from a MAC
// address (ff:fe in the middle).
func isEUI64(a netip.Addr) bool {
	b := a.As16()
	return b[11] == 0xff && b[12] == 0xfe
}

// chooseV6 picks the address to publish for observed address obs: with a
// suffix, obs's /64 plus the suffix; otherwise a stable (non-temporary,
// non-deprecated) local address in obs's /64, preferring EUI-64-looking
// ids, then obs itself, then the lowest; obs if there is none.
func chooseV6(obs netip.Addr, locals []LocalAddr, suffix netip.Addr) (netip.Addr, string) {
	if suffix.IsValid() {
		return withSuffix(obs, suffix), "configured ipv6_suffix"
	}
	p := netip.PrefixFrom(obs, 64).Masked()
	var cands []netip.Addr
	for _, l := range locals {
		if l.Temporary || l.Deprecated || !l.Addr.Is6() || l.Addr.Zone() != "" || !p.Contains(l.Addr) {
			continue
		}
		cands = append(cands, l.Addr)
	}
	if len(cands) == 0 {
		return obs, "no stable local address in the same /64"
	}
	var best netip.Addr
	for _, c := range cands {
		if isEUI64(c) && (!best.IsValid() || c.Less(best)) {
			best = c
		}
	}
	if best.IsValid() {
		return best, "stable EUI-64 local address"
	}
	for _, c := range cands {
		if c == obs {
			return obs, "observed address is stable"
		}
	}
	for _, c := range cands {
		if !best.IsValid() || c.Less(best) {
			best = c
		}
	}
	return best, "stable local address"
}

// stableV6 applies chooseV6 to the agreed address obs, reading the host's
// interfaces, and logs the choice. A choice that fails validation falls
// back to obs.
func (d *Discoverer) stableV6(obs netip.Addr) netip.Addr {
	var locals []LocalAddr
	if !d.suffix.IsValid() {
		var err error
		locals, err = d.localAddrs()
		if err != nil {
			d.log.Warn("cannot read interface addresses; publishing the observed IPv6 address", "observed", obs.String(), "err", err.Error())
			return obs
		}
	}
	a, why := chooseV6(obs, locals, d.suffix)
	if a != obs {
		if reason := checkAddr(a, V6, d.allow); reason != "" {
			d.log.Warn("chosen IPv6 address is not public; publishing the observed one", "chosen", a.String(), "observed", obs.String(), "reason", reason)
			return obs
		}
	}
	if a != obs {
		d.log.Info("publishing the host's stable IPv6 address instead of the observed one", "observed", obs.String(), "published", a.String(), "why", why)
	} else {
		d.log.Debug("publishing the observed IPv6 address", "observed", obs.String(), "why", why)
	}
	return a
}
