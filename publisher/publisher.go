package publisher

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Errors callers branch on.
var (
	// ErrNoFinder: Run or RunOnce was called without Options.Finder.
	ErrNoFinder = errors.New("no address finder configured")
	// ErrNoAddress: there is no address to publish yet (no check has
	// succeeded and none was published before).
	ErrNoAddress = errors.New("no public address known yet")
	// ErrRunning: Run was called while another Run is active.
	ErrRunning = errors.New("publisher loop is already running")
)

// Publisher is the server-role loop. Its methods are safe for concurrent
// use; Run runs at most once at a time.
type Publisher struct {
	opts Options // defaults applied
	log  *slog.Logger

	trigger chan struct{} // PublishNow, coalesced
	wake    chan struct{} // pause switch changed
	running atomic.Bool
	pruning atomic.Bool

	sendMu sync.Mutex // serialises reserve → send → record
	saveMu sync.Mutex // orders state saves

	mu          sync.Mutex // guards the fields below
	rec         Record
	pauseDirty  bool          // rec.Paused was set here and not saved yet
	pauseSaving chan struct{} // closed when the pause saver ends; nil: none runs
	current     Addrs         // newest known address, with held families
	missing     [2]int        // checks in a row without IPv4, IPv6 while held
	status      Status
	checkErr    error
	checkAt     time.Time
	sendErr     error
	sendAt      time.Time
	authUntil   time.Time             // the loop's next SMTP login after a refused password
	pruneErr    error                 // the last retention failure
	pruneAuth   authBackoff           // retention logins after a refused password
	rcpts       map[string]*rcptState // failing recipients, by address
	last        *resendable           // the last message this process sent
	notifying   bool                  // a goroutine is handing snapshots to OnStatus
	reported    Status                // last snapshot handed to OnStatus
}

// New validates opts, applies defaults and loads the saved state from
// opts.Store. It does no network I/O and calls no OnStatus.
func New(opts Options) (*Publisher, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	rec, _, err := opts.Store.Load()
	if err != nil {
		return nil, fmt.Errorf("%w (fix or remove the file; a new file restarts sequence numbers, "+
			"and clients ignore messages until they pass the last one they accepted)", err)
	}
	p := &Publisher{
		opts:    opts,
		log:     opts.Logger,
		trigger: make(chan struct{}, 1),
		wake:    make(chan struct{}, 1),
		rec:     rec,
		current: Addrs{IPv4: rec.IPv4, IPv6: rec.IPv6},
	}
	p.status = p.statusLocked()
	return p, nil
}

// now returns the current time by Options.Now.
func (p *Publisher) now() time.Time { return p.opts.Now() }
