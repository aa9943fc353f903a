package publisher

import (
	"errors"

	"ipsync/health"
)

// Health is what the tray shows for s. Its states mean, for the server:
// Error, mail cannot be sent; Unreachable, the address sources fail or
// disagree; Stale, the current address waits for delivery; Unknown, no
// address known yet; Current, the current address is published.
func (s Status) Health() health.Status {
	h := health.Status{
		State:         health.Current,
		IPv4:          s.Addrs.IPv4,
		IPv6:          s.Addrs.IPv6,
		LastCheck:     s.LastCheck,
		LastSent:      s.LastSent,
		NextHeartbeat: s.NextHeartbeat,
		Seq:           s.LastSeq,
		Paused:        s.Paused,
	}
	switch {
	case s.LastError != nil && s.LastErrorSending:
		h.State = health.Error
		h.Err, h.ErrKind = s.LastError.Error(), "send"
		if errors.Is(s.LastError, ErrRejected) {
			h.ErrKind = "rejected"
		}
	case s.LastError != nil:
		h.State = health.Unreachable
		h.Err, h.ErrKind = s.LastError.Error(), "sources"
	case s.Addrs.IsZero():
		h.State = health.Unknown
	case s.Pending || s.Addrs != s.SentAddrs:
		h.State = health.Stale
	}
	return h
}
