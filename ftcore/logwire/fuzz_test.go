package logwire

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzDecodeEntries: parsing plain entries never panics, and whatever it
// accepts re-encodes to exactly the same bytes (the encoding is canonical,
// so decode(encode(x)) == x and encode(decode(b)) == b).
func FuzzDecodeEntries(f *testing.F) {
	var all []byte
	for _, e := range append(primaryEntries(), backupEntries()...) {
		one, _ := AppendEntry(nil, e)
		f.Add(one)
		all = append(all, one...)
	}
	hp, _ := hellos()
	h, _ := AppendEntry(nil, hp)
	f.Add(h)
	f.Add(all)
	f.Add([]byte{})
	f.Add([]byte{byte(TypeFragment), 0, 17, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		es, err := ParseEntries(data)
		if err != nil {
			if VerdictOf(err) != VerdictMalformed {
				t.Fatalf("parse error with verdict %v: %v", VerdictOf(err), err)
			}
		} else {
			var re []byte
			n := 0
			for e := range es.All() {
				if re, err = AppendEntry(re, e); err != nil {
					t.Fatalf("accepted entry %#v does not encode: %v", e, err)
				}
				n++
			}
			if n != es.Len() || !bytes.Equal(re, data) {
				t.Fatalf("round trip: %d of %d entries, %x != %x", n, es.Len(), re, data)
			}
		}
		if len(data) > 0 {
			if e, err := DecodeEntry(Type(data[0]), data[1:]); err == nil {
				re, err := AppendEntry(nil, e)
				if err != nil || !bytes.Equal(re[EntryHeaderLen:], data[1:]) {
					t.Fatalf("DecodeEntry round trip: %v", err)
				}
			}
		}
	})
}

// fuzzFixture is a sealed conversation: the frames the primary sent, and how
// to make a fresh backup session that can open them.
type fuzzFixture struct {
	ep        *Endpoint
	hp, hb    Hello
	authentic map[string]bool
}

func newFuzzFixture(f *testing.F) *fuzzFixture {
	p, _ := pair(f, Options{})
	hp, hb := hellos()
	fx := &fuzzFixture{ep: endpoint(f, Options{}), hp: hp, hb: hb, authentic: map[string]bool{}}
	add := func(frame []byte) {
		fx.authentic[string(frame)] = true
		f.Add(bytes.Clone(frame))
	}
	for _, e := range primaryEntries() {
		add(mustSeal(f, p, 1, 2, e))
	}
	add(mustSeal(f, p, 3, 4, primaryEntries()...))
	add(mustSeal(f, p, 0, 0))
	frs, _ := p.Fragment(InputFrame{ICount: 1, Frame: frameBytes(1514, 1)}, 1)
	for _, fr := range frs {
		add(mustSeal(f, p, 0, 0, fr))
	}
	p.SetEpoch(testEpoch + 1)
	add(mustSeal(f, p, 0, 0, Progress{ICount: 1}))
	return fx
}

// FuzzOpen: any bytes into Open never panic, never yield entries unless the
// verdict is ok, and the verdict is ok only for a frame the primary really
// sealed (forging would need the key), and only once.
func FuzzOpen(f *testing.F) {
	fx := newFuzzFixture(f)
	f.Add([]byte{0x46, 0x54, 2})
	f.Add([]byte{0x46, 0x54, 1, 0, 1, 0, 0, 0})
	s, err := fx.ep.NewSession(fx.hb, fx.hp)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// A fresh receive state for each input (as if newly handshaken).
		s.win, s.epoch = replayWindow{}, testEpoch
		in := bytes.Clone(data)
		fr, v, err := s.Open(in)
		if (v == VerdictOK) != (err == nil) || VerdictOf(err) != v {
			t.Fatalf("verdict %v with error %v", v, err)
		}
		if v != VerdictOK {
			if fr.Entries.Len() != 0 || fr.Entries.Bytes() != nil || fr.Header != (Header{}) {
				t.Fatalf("verdict %v yielded %+v", v, fr)
			}
			return
		}
		if !fx.authentic[string(data)] {
			t.Fatalf("forged frame accepted: %x", data)
		}
		n := 0
		for range fr.Entries.All() {
			n++
		}
		if n != int(fr.Count) {
			t.Fatalf("%d entries, header says %d", n, fr.Count)
		}
		if _, v, _ := s.Open(bytes.Clone(data)); v != VerdictReplay {
			t.Fatalf("second open of the same frame: %v", v)
		}
	})
}

// FuzzOpenHello: hello parsing never panics and accepts only hellos sealed
// with the key.
func FuzzOpenHello(f *testing.F) {
	ep := endpoint(f, Options{})
	hp, hb := hellos()
	authentic := map[string]bool{}
	for _, h := range []Hello{hp, hb} {
		fr, _ := ep.SealHello(nil, h)
		authentic[string(fr)] = true
		f.Add(fr)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, v, err := ep.OpenHello(data, 0)
		if (v == VerdictOK) != (err == nil) {
			t.Fatalf("verdict %v with error %v", v, err)
		}
		if v != VerdictOK && h != (Hello{}) {
			t.Fatalf("refused hello yielded %+v", h)
		}
		if v == VerdictOK && !authentic[string(data)] {
			t.Fatalf("forged hello accepted: %x", data)
		}
	})
}

// FuzzReassemble: any sequence of fragments never panics, respects the
// partial-entry limit, and a completed entry is well formed.
func FuzzReassemble(f *testing.F) {
	enc, _ := AppendEntry(nil, ConsoleInput{ICount: 7, Data: []byte("hello, world")})
	var seed []byte
	for off := 0; off < len(enc); off += 5 {
		end := min(off+5, len(enc))
		seed = append(seed, 1, 0, byte(off), 0, byte(len(enc)), 0, byte(end-off))
		seed = append(seed, enc[off:end]...)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := ReassemblyLimits{MaxSize: 4096, MaxPartial: 3, Timeout: 16}
		r := NewReassembler(lim)
		for seq := uint64(1); len(data) >= 7; seq++ {
			id := uint64(data[0] % 5)
			off := uint32(binary.BigEndian.Uint16(data[1:]))
			total := uint32(binary.BigEndian.Uint16(data[3:]))
			n := min(int(data[5]), len(data)-7)
			_ = data[6] // a step for the sequence clock
			fr := Fragment{ID: id, Offset: off, Total: total, Piece: data[7 : 7+n]}
			seq += uint64(data[6] % 4)
			data = data[7+n:]
			e, err := r.Add(seq, fr)
			if err != nil && e != nil {
				t.Fatal("entry with error")
			}
			if r.Pending() > lim.MaxPartial {
				t.Fatalf("%d partial entries", r.Pending())
			}
			if e != nil {
				if _, err := AppendEntry(nil, e); err != nil {
					t.Fatalf("completed entry does not encode: %v", err)
				}
			}
		}
	})
}
