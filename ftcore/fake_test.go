package ftcore_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"ftbox/ftcore"
	"ftbox/ftcore/logwire"
)

// fakeMachine is a small deterministic guest honouring the Machine contract:
// each input frame takes 50 instructions (plus N for "spin N") and then
// emits "reply <counter> <payload>"; with no work it idles; a timer armed
// every 10000 ticks wakes it for 20 instructions of work.
type fakeMachine struct {
	ic         uint64
	t0, i0     uint64
	num, den   uint64
	inq        [][]byte
	busy       uint64
	cur        []byte
	counter    uint64
	frames     [][]byte
	deadline   uint64
	timerFires uint64
	period     uint64
}

func newFake() *fakeMachine { return &fakeMachine{num: 1, den: 100, period: 10000, deadline: 10000} }

func (m *fakeMachine) ICount() uint64 { return m.ic }

func (m *fakeMachine) timeAt(ic uint64) uint64 { return m.t0 + (ic-m.i0)*m.num/m.den }

func (m *fakeMachine) Now() uint64 { return m.timeAt(m.ic) }

func (m *fakeMachine) NextDeadline() (uint64, bool) { return m.deadline, true }

func (m *fakeMachine) Run(until uint64) ftcore.Stop {
	for {
		if len(m.frames) > 0 {
			return ftcore.StopOutput
		}
		if m.ic >= until {
			return ftcore.StopBound
		}
		switch {
		case m.busy > 0:
			n := min(m.busy, until-m.ic)
			m.ic += n
			m.busy -= n
			if m.busy == 0 && m.cur != nil {
				m.counter++
				m.frames = append(m.frames, fmt.Appendf(nil, "reply %d %s", m.counter, m.cur))
				m.cur = nil
			}
		case m.Now() >= m.deadline:
			m.deadline += m.period
			m.timerFires++
			m.busy = 20
		case len(m.inq) > 0:
			m.cur, m.inq = m.inq[0], m.inq[1:]
			m.busy = 50
			if f := strings.Fields(string(m.cur)); len(f) == 2 && f[0] == "spin" {
				n, _ := strconv.ParseUint(f[1], 10, 32)
				m.busy += n
			}
		default:
			return ftcore.StopIdle
		}
	}
}

func (m *fakeMachine) Inject(e logwire.Entry) error {
	switch e := e.(type) {
	case logwire.InputFrame:
		if e.ICount != m.ic {
			return fmt.Errorf("frame at %d, machine at %d", e.ICount, m.ic)
		}
		if len(e.Frame) == 0 {
			return fmt.Errorf("empty frame")
		}
		if len(m.inq) < 64 {
			m.inq = append(m.inq, append([]byte(nil), e.Frame...))
		}
	case logwire.ClockSync:
		if e.ICount != m.ic {
			return fmt.Errorf("clock at %d, machine at %d", e.ICount, m.ic)
		}
		now := m.Now()
		m.t0, m.i0 = max(now, e.Time), m.ic
		if e.RateDen != 0 {
			m.num, m.den = e.RateNum, e.RateDen
		}
	default:
		return fmt.Errorf("unsupported %v", e.Type())
	}
	return nil
}

func (m *fakeMachine) TakeFrames() [][]byte {
	f := m.frames
	m.frames = nil
	return f
}

func (m *fakeMachine) Digest() [32]byte {
	h := sha256.New()
	for _, v := range []uint64{m.ic, m.t0, m.i0, m.num, m.den, m.busy, m.counter, m.deadline, m.timerFires, uint64(len(m.inq))} {
		h.Write(binary.BigEndian.AppendUint64(nil, v))
	}
	for _, f := range m.inq {
		h.Write(f)
	}
	h.Write(m.cur)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

type fakeState struct {
	IC, T0, I0, Num, Den uint64
	Inq                  [][]byte
	Busy                 uint64
	Cur                  []byte
	Counter              uint64
	Frames               [][]byte
	Deadline, TimerFires uint64
	Period               uint64
}

func (m *fakeMachine) Save() []byte {
	b, _ := json.Marshal(fakeState{m.ic, m.t0, m.i0, m.num, m.den, m.inq, m.busy, m.cur, m.counter, m.frames, m.deadline, m.timerFires, m.period})
	return b
}

func (m *fakeMachine) Restore(b []byte) error {
	var s fakeState
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("fake restore: %w", err)
	}
	*m = fakeMachine{s.IC, s.T0, s.I0, s.Num, s.Den, s.Inq, s.Busy, s.Cur, s.Counter, s.Frames, s.Deadline, s.TimerFires, s.Period}
	return nil
}
