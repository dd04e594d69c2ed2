// Package appliance wires one ftbox box: the guest machine, the replication
// core, the TAP and the logging link. This file holds the simplest wiring, a
// guest on a TAP with no replication (`ftbox emu run`): the same owner-loop
// shape the replicated box uses, with reality as the only event source.
package appliance

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"ftbox/guestvm"
	"ftbox/tap"
)

// Standalone runs one guest against the real clock and, optionally, a Port.
type Standalone struct {
	M       *guestvm.Machine
	Port    tap.Port  // nil: no network
	Console io.Writer // the guest's UART output; nil discards it
	Log     *slog.Logger

	// Slice bounds how many instructions run between looks at the outside
	// world (frames, clock). Zero means DefaultSlice.
	Slice uint64
}

// DefaultSlice is about a millisecond of guest execution at interpreter speed.
const DefaultSlice = 200_000

// ticker converts host time to guest mtime ticks since the run started.
type hostClock struct{ start time.Time }

func (h hostClock) ticks() uint64 {
	return uint64(time.Since(h.start) / (time.Second / guestvm.TimebaseHz))
}

// Run drives the guest until it exits, ctx is cancelled, or the port fails.
// It returns the guest's exit kind and code.
func (s *Standalone) Run(ctx context.Context) (guestvm.ExitKind, uint32, error) {
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	slice := s.Slice
	if slice == 0 {
		slice = DefaultSlice
	}
	m := s.M
	frames := make(chan []byte, 256)
	portErr := make(chan error, 1)
	if s.Port != nil {
		go func() {
			if err := readPort(ctx, s.Port, frames, "tap", nil); err != nil {
				portErr <- err
			}
		}()
	}
	hc := hostClock{start: time.Now()}
	var rc rateClock
	inject := func(ev guestvm.Event) error {
		ev.ICount = m.ICount()
		if _, err := m.Inject(ev); err != nil {
			return fmt.Errorf("inject %v: %w", ev.Kind, err)
		}
		return nil
	}
	flush := func() error {
		if c := m.TakeConsole(); len(c) > 0 && s.Console != nil {
			if _, err := s.Console.Write(c); err != nil {
				return fmt.Errorf("console: %w", err)
			}
		}
		for _, f := range m.TakeFrames() {
			if s.Port == nil {
				continue
			}
			if err := s.Port.WriteFrame(f); err != nil {
				return err
			}
		}
		return nil
	}
	if err := inject(guestvm.Event{Kind: guestvm.EvClock, Time: 0}); err != nil {
		return 0, 0, err
	}
	rc.mark(0, 0)
	for {
		if err := ctx.Err(); err != nil {
			return guestvm.ExitNone, 0, err
		}
		// Inputs that arrived while the guest ran take effect now.
	drain:
		for {
			select {
			case f := <-frames:
				if err := inject(guestvm.Event{Kind: guestvm.EvFrame, Data: f}); err != nil {
					log.Warn("frame refused", "err", err)
				}
			case err := <-portErr:
				return guestvm.ExitNone, 0, err
			default:
				break drain
			}
		}
		now := hc.ticks()
		num, den := rc.rate(m.ICount(), now)
		if err := inject(guestvm.Event{Kind: guestvm.EvClock, Time: now, RateNum: num, RateDen: den}); err != nil {
			return 0, 0, err
		}
		why := m.Run(m.ICount() + slice)
		if err := flush(); err != nil {
			return guestvm.ExitNone, 0, err
		}
		switch why {
		case guestvm.StopExit:
			k, code := m.Exit()
			return k, code, nil
		case guestvm.StopIdle:
			if err := idleWait(ctx, m, hc, frames, portErr, inject, log); err != nil {
				return guestvm.ExitNone, 0, err
			}
			rc.mark(m.ICount(), m.Now())
		}
	}
}

// idleWait sleeps in host time until the idle guest's timer is due or input
// arrives, and injects what woke it; the instruction count does not move.
func idleWait(ctx context.Context, m *guestvm.Machine, hc hostClock, frames <-chan []byte,
	portErr <-chan error, inject func(guestvm.Event) error, log *slog.Logger) error {
	var wake <-chan time.Time
	if d, ok := m.NextDeadline(); ok {
		wait := time.Duration(0)
		if gnow := m.Now(); d > gnow {
			wait = time.Duration(min(d-gnow, 1<<40)) * (time.Second / guestvm.TimebaseHz)
		}
		t := time.NewTimer(wait)
		defer t.Stop()
		wake = t.C
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-portErr:
		return err
	case f := <-frames:
		if err := inject(guestvm.Event{Kind: guestvm.EvClock, Time: hc.ticks()}); err != nil {
			return err
		}
		if err := inject(guestvm.Event{Kind: guestvm.EvFrame, Data: f}); err != nil {
			log.Warn("frame refused", "err", err)
		}
	case <-wake:
		d, _ := m.NextDeadline()
		return inject(guestvm.Event{Kind: guestvm.EvClock, Time: max(d, hc.ticks())})
	}
	return nil
}

// rateClock estimates guest time ticks per instruction from the last
// interval, so guest time runs close to host time between syncs.
type rateClock struct {
	ic, t uint64
}

const rateDen = 1 << 20

func (r *rateClock) mark(ic, t uint64) { r.ic, r.t = ic, t }

func (r *rateClock) rate(ic, t uint64) (num, den uint64) {
	defer r.mark(ic, t)
	di, dt := ic-r.ic, t-r.t
	if di < 10_000 || t < r.t {
		return 0, 0 // too little to measure: keep the current rate
	}
	num = dt * rateDen / di
	return min(max(num, 1), 1<<32), rateDen
}
