package logwire

import (
	"encoding/binary"
	"testing"
)

type benchShape struct {
	name    string
	role    Role
	entries []Entry
}

func benchShapes() []benchShape {
	fill := make([]Entry, 0, 200)
	for i := range (DefaultMTU - Overhead) / 11 {
		fill = append(fill, Progress{ICount: uint64(i)})
	}
	return []benchShape{
		{"log5", RolePrimary, []Entry{
			InputFrame{ICount: 1, Frame: frameBytes(64, 1)},
			ClockSync{ICount: 1, Time: 2, RateNum: 1, RateDen: 1},
			Progress{ICount: 3},
			ReleasedOutput{Watermark: 4},
			Digest{ICount: 5},
		}},
		{"input1400", RolePrimary, []Entry{InputFrame{ICount: 1, Frame: frameBytes(1400, 1)}}},
		{"progress_full", RolePrimary, fill},
		{"ack_heartbeat", RoleBackup, []Entry{Ack{Seq: 1, ICount: 2}, Heartbeat{Time: 3, ICount: 4}}},
	}
}

func payloadOf(es []Entry) int {
	n := 0
	for _, e := range es {
		n += bodyLen(e)
	}
	return n
}

// BenchmarkSeal builds and seals one frame per op into a reused buffer.
// Metrics: ns/op is ns per frame; overhead_B is the frame's bytes beyond the
// entries' bodies (header, tag and 3 bytes per entry); entries is per frame.
func BenchmarkSeal(b *testing.B) {
	p, bk := pair(b, Options{})
	for _, sh := range benchShapes() {
		s := p
		if sh.role == RoleBackup {
			s = bk
		}
		b.Run(sh.name, func(b *testing.B) {
			buf := make([]byte, 0, DefaultMTU)
			var n int
			b.ReportAllocs()
			for b.Loop() {
				bt := s.NewBatch(buf, 1, 2)
				for _, e := range sh.entries {
					if err := bt.Add(e); err != nil {
						b.Fatal(err)
					}
				}
				frame, _, err := s.Seal(&bt)
				if err != nil {
					b.Fatal(err)
				}
				n = len(frame)
			}
			b.SetBytes(int64(n))
			b.ReportMetric(float64(n-payloadOf(sh.entries)), "overhead_B")
			b.ReportMetric(float64(len(sh.entries)), "entries")
		})
	}
}

// BenchmarkOpen opens one frame per op (copying it into the receive buffer,
// as a socket read would, and resetting the replay window) and walks its
// entries without decoding them into interfaces.
func BenchmarkOpen(b *testing.B) {
	p, bk := pair(b, Options{})
	for _, sh := range benchShapes() {
		from, to := p, bk
		if sh.role == RoleBackup {
			from, to = bk, p
		}
		frame := mustSeal(b, from, 1, 2, sh.entries...)
		b.Run(sh.name, func(b *testing.B) {
			rx := make([]byte, DefaultMTU)
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				to.win = replayWindow{}
				n := copy(rx, frame)
				f, v, err := to.Open(rx[:n])
				if v != VerdictOK {
					b.Fatal(v, err)
				}
				for t, body := range f.Entries.Raw() {
					_, _ = t, body
				}
			}
		})
	}
}

// BenchmarkBaselineAEAD is the same run's baseline: raw ChaCha20-Poly1305
// over the same plaintext sizes, no framing.
func BenchmarkBaselineAEAD(b *testing.B) {
	p, _ := pair(b, Options{})
	for _, sh := range benchShapes() {
		var plain []byte
		for _, e := range sh.entries {
			plain, _ = AppendEntry(plain, e)
		}
		b.Run(sh.name, func(b *testing.B) {
			buf := make([]byte, 0, DefaultMTU)
			var nonce [12]byte
			var ad [HeaderLen]byte
			b.SetBytes(int64(len(plain)))
			b.ReportAllocs()
			seq := uint64(0)
			for b.Loop() {
				seq++
				binary.BigEndian.PutUint64(nonce[4:], seq)
				_ = p.tx.Seal(buf[:0], nonce[:], plain, ad[:])
			}
		})
	}
}

// BenchmarkFragmented1514: a full-size Ethernet frame as input, split into
// two fragments, sealed, opened and reassembled.
func BenchmarkFragmented1514(b *testing.B) {
	p, bk := pair(b, Options{})
	e := InputFrame{ICount: 1, Frame: frameBytes(1514, 1)}
	buf := make([]byte, 0, DefaultMTU)
	b.ReportAllocs()
	id := uint64(0)
	var wire int
	for b.Loop() {
		id++
		frs, err := p.Fragment(e, id)
		if err != nil {
			b.Fatal(err)
		}
		wire = 0
		for _, fr := range frs {
			bt := p.NewBatch(buf, 0, 0)
			if err := bt.Add(fr); err != nil {
				b.Fatal(err)
			}
			frame, _, _ := p.Seal(&bt)
			wire += len(frame)
			f, v, err := bk.Open(frame)
			if v != VerdictOK {
				b.Fatal(v, err)
			}
			for e := range f.Entries.All() {
				if _, err := bk.Reassemble(f.Seq, e.(Fragment)); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.ReportMetric(float64(wire-bodyLen(e)), "overhead_B")
}
