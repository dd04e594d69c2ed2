package sim_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"ftbox/ftcore"
	"ftbox/ftcore/logwire"
	"ftbox/tools/pkt"
)

// counterVM is a cheap deterministic stand-in for netsvc that honours the
// ftcore.Machine contract: the same UDP counter service (INCR/GET on port
// 7000), a NIC queue of 32 frames that drops when full, a periodic timer,
// idling when there is nothing to do, and every effect — a reply, a timer
// tick — at an instruction count that depends only on the machine's state
// and inputs, never on how Run's bounds slice the execution. The sweep runs
// thousands of seeds on it; the netsvc sweep checks the real guest.
type counterVM struct {
	ic               uint64
	t0, i0, num, den uint64 // mtime = t0 + (ic−i0)·num/den
	rx               [][]byte
	busy             uint64 // instructions left in the current job
	job              []byte // the frame being handled (nil: timer work)
	names            []string
	values           []uint64
	deadline, period uint64
	ticks            uint64
	out              [][]byte
}

func newCounterVM() (ftcore.Machine, error) {
	return &counterVM{num: 3, den: 100, period: 10_000, deadline: 10_000}, nil
}

func (m *counterVM) ICount() uint64 { return m.ic }
func (m *counterVM) Now() uint64    { return m.t0 + (m.ic-m.i0)*m.num/m.den }

func (m *counterVM) NextDeadline() (uint64, bool) { return m.deadline, true }

// reach is the instruction count at which mtime reaches the deadline.
func (m *counterVM) reach() uint64 {
	if m.Now() >= m.deadline {
		return m.ic
	}
	if m.num == 0 {
		return ^uint64(0)
	}
	d := m.deadline - m.t0
	return m.i0 + (d*m.den+m.num-1)/m.num
}

func (m *counterVM) Run(until uint64) ftcore.Stop {
	for {
		if len(m.out) > 0 {
			return ftcore.StopOutput
		}
		if m.ic >= until {
			return ftcore.StopBound
		}
		if r := m.reach(); r <= m.ic {
			m.deadline += m.period
			m.ticks++
			m.busy += 200 // the timer interrupt's work
			continue
		}
		if m.busy == 0 {
			if len(m.rx) == 0 {
				return ftcore.StopIdle
			}
			m.job, m.rx = m.rx[0], m.rx[1:]
			m.busy = 2000 + uint64(len(m.job))*4
		}
		n := min(m.busy, until-m.ic, m.reach()-m.ic)
		m.ic += n
		m.busy -= n
		if m.busy == 0 && m.job != nil {
			m.handle(m.job)
			m.job = nil
		}
	}
}

func (m *counterVM) handle(f []byte) {
	if len(f) < 42 || binary.BigEndian.Uint16(f[12:]) != 0x0800 || f[23] != 17 {
		return
	}
	ihl := int(f[14]&0xf) * 4
	if len(f) < 14+ihl+8 || binary.BigEndian.Uint16(f[14+ihl+2:]) != 7000 {
		return
	}
	ul := int(binary.BigEndian.Uint16(f[14+ihl+4:]))
	if ul < 8 || len(f) < 14+ihl+ul {
		return
	}
	fs := strings.Fields(string(f[14+ihl+8 : 14+ihl+ul]))
	if len(fs) != 3 {
		return
	}
	i := slices.Index(m.names, fs[1])
	if i < 0 {
		m.names = append(m.names, fs[1])
		m.values = append(m.values, 0)
		i = len(m.names) - 1
	}
	switch fs[0] {
	case "INCR":
		m.values[i]++
	case "GET":
	default:
		return
	}
	m.out = append(m.out, pkt.UDP(guestHost, clientHost, 7000, 4000, fmt.Appendf(nil, "%s %d", fs[2], m.values[i])))
}

func (m *counterVM) Inject(e logwire.Entry) error {
	switch e := e.(type) {
	case logwire.InputFrame:
		if e.ICount != m.ic {
			return fmt.Errorf("frame at %d, machine at %d", e.ICount, m.ic)
		}
		if len(e.Frame) < 14 {
			return fmt.Errorf("runt frame")
		}
		if len(m.rx) < 32 {
			m.rx = append(m.rx, append([]byte(nil), e.Frame...))
		}
	case logwire.ClockSync:
		if e.ICount != m.ic {
			return fmt.Errorf("clock at %d, machine at %d", e.ICount, m.ic)
		}
		m.t0, m.i0 = max(m.Now(), e.Time), m.ic
		if e.RateDen != 0 {
			m.num, m.den = e.RateNum, e.RateDen
		}
	default:
		return fmt.Errorf("unsupported %v", e.Type())
	}
	return nil
}

func (m *counterVM) TakeFrames() [][]byte {
	f := m.out
	m.out = nil
	return f
}

func (m *counterVM) Digest() [32]byte {
	h := sha256.New()
	for _, v := range []uint64{m.ic, m.t0, m.i0, m.num, m.den, m.busy, m.deadline, m.ticks, uint64(len(m.rx)), uint64(len(m.job))} {
		h.Write(binary.BigEndian.AppendUint64(nil, v))
	}
	for _, f := range m.rx {
		h.Write(f)
	}
	h.Write(m.job)
	for i, n := range m.names {
		fmt.Fprintf(h, "%s=%d;", n, m.values[i])
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}

type counterState struct {
	IC, T0, I0, Num, Den uint64
	RX                   [][]byte
	Busy                 uint64
	Job                  []byte
	Names                []string
	Values               []uint64
	Deadline, Period     uint64
	Ticks                uint64
	Out                  [][]byte
}

func (m *counterVM) Save() []byte {
	b, _ := json.Marshal(counterState{m.ic, m.t0, m.i0, m.num, m.den, m.rx, m.busy, m.job, m.names, m.values, m.deadline, m.period, m.ticks, m.out})
	return b
}

func (m *counterVM) Restore(b []byte) error {
	var s counterState
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("counterVM restore: %w", err)
	}
	*m = counterVM{s.IC, s.T0, s.I0, s.Num, s.Den, s.RX, s.Busy, s.Job, s.Names, s.Values, s.Deadline, s.Period, s.Ticks, s.Out}
	return nil
}
