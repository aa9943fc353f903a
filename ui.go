package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"ipsync/health"
	"ipsync/tray"
)

// ui is the front end of a running role: a tray icon when a desktop is
// there, else nothing but the log.
type ui struct {
	tray *tray.Tray // nil when headless
	log  *slog.Logger
}

// startUI decides between the tray and headless mode, and says why when it
// is headless without being asked to be.
func startUI(ctx context.Context, e *env, log *slog.Logger, headless bool, opts tray.Options) *ui {
	u := &ui{log: log}
	if headless {
		return u
	}
	ok, why := tray.Available(ctx)
	if !ok {
		log.Info(why)
		return u
	}
	if why != "" {
		log.Warn(why)
	}
	opts.Logger = log.With("part", "tray")
	u.tray = tray.New(opts)
	return u
}

// set shows s in the tray, if any. It never blocks.
func (u *ui) set(s health.Status) {
	if u.tray != nil {
		u.tray.SetStatus(s)
	}
}

// run runs loop until ctx ends or, with a tray, the user quits. The tray
// owns the calling goroutine (macOS requires the main one) and the loop
// runs beside it; run returns once the loop has finished (state saved,
// connections logged out).
func (u *ui) run(ctx context.Context, loop func(context.Context) error) error {
	if u.tray == nil {
		return ignoreCanceled(ctx, loop(ctx))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg      sync.WaitGroup
		loopErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		loopErr = loop(ctx)
		cancel() // a loop that ends on its own ends the tray too
	}()
	if err := u.tray.Run(ctx); err != nil && ctx.Err() == nil {
		// The desktop said yes but the tray could not start: carry on
		// headless rather than stop the role (design section 8).
		u.log.Warn("the tray icon could not start: running headless", "err", err)
		wg.Wait()
	}
	cancel()
	wg.Wait()
	if errors.Is(loopErr, context.Canceled) {
		return nil
	}
	return loopErr
}

// ignoreCanceled treats the end of ctx (Ctrl-C, SIGTERM, Quit) as success.
func ignoreCanceled(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return nil
	}
	return err
}
