package guestvm

import (
	"errors"
	"fmt"
)

// EventKind names a kind of external input.
type EventKind uint8

const (
	EvFrame   EventKind = 1 // a frame arrives at the NIC
	EvClock   EventKind = 2 // guest time is synced to the host's
	EvConsole EventKind = 3 // bytes arrive at the UART
)

func (k EventKind) String() string {
	switch k {
	case EvFrame:
		return "frame"
	case EvClock:
		return "clock"
	case EvConsole:
		return "console"
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Event is one piece of nondeterministic input, the unit the primary logs and
// the backup replays. It takes effect between instructions, at exactly ICount.
type Event struct {
	Kind   EventKind
	ICount uint64
	// EvFrame, EvConsole: the bytes. Inject copies them.
	Data []byte
	// EvClock: from ICount on, mtime = max(current mtime, Time) and advances
	// RateNum/RateDen ticks per instruction (RateDen 0 keeps the rate).
	Time             uint64
	RateNum, RateDen uint64
}

// MaxFrame is the largest frame Inject accepts (an Ethernet frame with a VLAN
// tag and no FCS).
const MaxFrame = 1518

// Errors returned by Inject.
var (
	ErrWrongICount = errors.New("event is not due at the current instruction count")
	ErrBadEvent    = errors.New("malformed event")
)

// InjectResult says what the machine did with an accepted event.
type InjectResult uint8

const (
	Applied InjectResult = iota
	// DroppedByDevice: the event was valid but the guest's device had no room
	// (NIC queue full, UART FIFO full); real hardware drops too, and replay
	// drops identically.
	DroppedByDevice
)

// Inject applies an event at the current instruction count. An event for any
// other count, or a malformed one, is refused and changes nothing.
func (m *Machine) Inject(ev Event) (InjectResult, error) {
	if ev.ICount != m.cpu.ICount() {
		return 0, fmt.Errorf("%w: %v at %d, machine at %d", ErrWrongICount, ev.Kind, ev.ICount, m.cpu.ICount())
	}
	switch ev.Kind {
	case EvFrame:
		if len(ev.Data) < 14 || len(ev.Data) > MaxFrame {
			return 0, fmt.Errorf("%w: frame of %d bytes", ErrBadEvent, len(ev.Data))
		}
		if !m.net.Deliver(ev.Data) {
			return DroppedByDevice, nil
		}
	case EvClock:
		if ev.RateDen != 0 && (ev.RateNum > 1<<32 || ev.RateDen > 1<<32) {
			return 0, fmt.Errorf("%w: clock rate %d/%d", ErrBadEvent, ev.RateNum, ev.RateDen)
		}
		m.clk.sync(m.cpu.ICount(), ev.Time, ev.RateNum, ev.RateDen)
		m.clint.Update()
	case EvConsole:
		if len(ev.Data) == 0 || len(ev.Data) > 4096 {
			return 0, fmt.Errorf("%w: console input of %d bytes", ErrBadEvent, len(ev.Data))
		}
		res := Applied
		for _, b := range ev.Data {
			if !m.uart.Receive(b) {
				res = DroppedByDevice
			}
		}
		return res, nil
	default:
		return 0, fmt.Errorf("%w: kind %d", ErrBadEvent, ev.Kind)
	}
	return Applied, nil
}

// Result is the outcome of RunOffline.
type Result struct {
	Exit    ExitKind
	Code    uint32
	ICount  uint64
	Console []byte
	Frames  [][]byte
}

// RunOffline runs the guest with no outside world until it exits or executes
// limit instructions in total: idle time is skipped by syncing the clock to
// the timer deadline (through Inject, like any other event), console output
// and frames are collected. Tests, benchmarks and the differential checks
// against QEMU use it.
func (m *Machine) RunOffline(limit uint64) (Result, error) {
	var res Result
	for {
		why := m.Run(limit)
		res.Console = append(res.Console, m.TakeConsole()...)
		res.Frames = append(res.Frames, m.TakeFrames()...)
		res.ICount = m.ICount()
		switch why {
		case StopExit:
			res.Exit, res.Code = m.Exit()
			return res, nil
		case StopBound:
			res.Exit = ExitLimit
			return res, nil
		case StopIdle:
			d, ok := m.NextDeadline()
			if !ok || d <= m.Now() { // no timer, or one the guest masked
				res.Exit = ExitHung
				return res, nil
			}
			if _, err := m.Inject(Event{Kind: EvClock, ICount: m.ICount(), Time: d}); err != nil {
				return res, err
			}
		}
	}
}
