package discover

import (
	"fmt"
	"time"
)

// Cooldowns for refusing sources: without Retry-After the bench doubles
// from baseCooldown with each refusal in a row, up to maxCooldown; a
// Retry-After is honoured (but capped at maxCooldown, and at least
// minCooldown so a "Retry-After: 0" still spares the service a while).
const (
	minCooldown  = time.Minute
	baseCooldown = 5 * time.Minute
	maxCooldown  = 6 * time.Hour
)

// benchKey identifies a source; names are unique within a family.
type benchKey struct {
	fam  Family
	name string
}

// benchState is a source's refusal history.
type benchState struct {
	strikes int       // refusals since the last good answer
	until   time.Time // not asked before this time
}

// benchedError is the vote of a source skipped because it is benched.
type benchedError struct{ until time.Time }

func (e *benchedError) Error() string {
	return fmt.Sprintf("benched until %s after refusing", e.until.UTC().Format(time.RFC3339))
}

// cooldown returns how long to bench after the strikes-th refusal in a row,
// refusal e, at time now.
func cooldown(strikes int, e *RefusedError, now time.Time) time.Duration {
	var d time.Duration
	switch {
	case !e.RetryAt.IsZero():
		d = e.RetryAt.Sub(now)
	case e.RetryAfter > 0:
		d = e.RetryAfter
	default:
		d = baseCooldown
		for i := 1; i < strikes && d < maxCooldown; i++ {
			d *= 2
		}
	}
	return min(max(d, minCooldown), maxCooldown)
}

// benched reports whether s is benched at now, and until when.
func (d *Discoverer) benched(s Source, now time.Time) (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	b := d.bench[benchKey{s.Family(), s.Name()}]
	if b == nil || !now.Before(b.until) {
		return time.Time{}, false
	}
	return b.until, true
}

// benchSource records a refusal by s and benches it.
func (d *Discoverer) benchSource(s Source, e *RefusedError) {
	now := d.now()
	d.mu.Lock()
	k := benchKey{s.Family(), s.Name()}
	b := d.bench[k]
	if b == nil {
		b = &benchState{}
		d.bench[k] = b
	}
	b.strikes++
	b.until = now.Add(cooldown(b.strikes, e, now))
	until, strikes := b.until, b.strikes
	d.mu.Unlock()
	d.log.Info("source benched", "source", s.Name(), "family", s.Family().String(), "until", until, "refusals", strikes, "err", e.Error())
}

// clearBench forgets s's refusals after a good answer.
func (d *Discoverer) clearBench(s Source) {
	d.mu.Lock()
	delete(d.bench, benchKey{s.Family(), s.Name()})
	d.mu.Unlock()
}
