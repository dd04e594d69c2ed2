package logwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

func TestRoundTripEveryType(t *testing.T) {
	p, b := pair(t, Options{})
	for _, dir := range []struct {
		name     string
		from, to *Session
		entries  []Entry
	}{
		{"primary→backup", p, b, primaryEntries()},
		{"backup→primary", b, p, backupEntries()},
	} {
		t.Run(dir.name, func(t *testing.T) {
			frame := mustSeal(t, dir.from, 11, 22, dir.entries...)
			f, v, err := dir.to.Open(frame)
			if err != nil || v != VerdictOK {
				t.Fatalf("open: %v %v", v, err)
			}
			if f.Ack != 11 || f.Base != 22 || f.Epoch != testEpoch || f.Role != dir.from.Role() || f.Session != dir.from.ID() {
				t.Errorf("header %v", f.Header)
			}
			if got := collect(f.Entries); !reflect.DeepEqual(got, dir.entries) {
				t.Errorf("entries\n got %#v\nwant %#v", got, dir.entries)
			}
			// Each type alone, too.
			for _, e := range dir.entries {
				f, v, err := dir.to.Open(mustSeal(t, dir.from, 0, 0, e))
				if v != VerdictOK {
					t.Fatalf("%T: %v %v", e, v, err)
				}
				if got := collect(f.Entries); len(got) != 1 || !reflect.DeepEqual(got[0], e) {
					t.Errorf("%T: got %#v", e, got)
				}
			}
		})
	}
	if p.ID() != b.ID() {
		t.Errorf("session ids differ: %08x %08x", p.ID(), b.ID())
	}
}

func TestEmptyFrameCarriesAck(t *testing.T) {
	p, b := pair(t, Options{})
	frame := mustSeal(t, b, 1234, 0)
	if len(frame) != Overhead {
		t.Errorf("empty frame is %d bytes, want %d", len(frame), Overhead)
	}
	f, v, err := p.Open(frame)
	if v != VerdictOK || f.Ack != 1234 || f.Entries.Len() != 0 {
		t.Fatalf("%v %v %v", v, err, f.Header)
	}
}

func TestHandshakeRules(t *testing.T) {
	ep := endpoint(t, Options{})
	hp, hb := hellos()
	if _, err := ep.NewSession(hp, hb); err != nil {
		t.Fatal(err)
	}
	s, err := ep.NewSession(hb, hp) // responder side: unconfirmed
	if err != nil || s.Confirmed() {
		t.Fatalf("responder: %v confirmed=%v", err, s != nil && s.Confirmed())
	}
	bad := []struct {
		name        string
		local, peer func() (Hello, Hello)
	}{
		{"same role", func() (Hello, Hello) { b := hb; b.Role = RolePrimary; return hp, b }, nil},
		{"epochs differ", func() (Hello, Hello) { b := hb; b.Epoch++; return hp, b }, nil},
		{"no echo either way", func() (Hello, Hello) { b := hb; b.Echo = fill32(1); return hp, b }, nil},
		{"zero nonce", func() (Hello, Hello) { a := hp; a.Nonce = [32]byte{}; return a, hb }, nil},
		{"equal nonces (reflected hello)", func() (Hello, Hello) { b := hb; b.Nonce = hp.Nonce; return hp, b }, nil},
		{"invalid role", func() (Hello, Hello) { a := hp; a.Role = 9; return a, hb }, nil},
	}
	for _, c := range bad {
		l, p := c.local()
		if _, err := ep.NewSession(l, p); !errors.Is(err, ErrHandshake) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func TestResponderConfirmedByFirstFrame(t *testing.T) {
	p, b := pair(t, Options{})
	if !p.Confirmed() || b.Confirmed() {
		t.Fatalf("confirmed p=%v b=%v", p.Confirmed(), b.Confirmed())
	}
	if _, v, _ := b.Open(mustSeal(t, p, 0, 0, Progress{ICount: 1})); v != VerdictOK || !b.Confirmed() {
		t.Fatalf("%v confirmed=%v", v, b.Confirmed())
	}
}

func TestHelloRejections(t *testing.T) {
	ep := endpoint(t, Options{})
	hp, _ := hellos()
	good, err := ep.SealHello(nil, hp)
	if err != nil {
		t.Fatal(err)
	}
	if len(good) != helloFrameLen {
		t.Fatalf("hello is %d bytes", len(good))
	}
	mut := func(f func([]byte) []byte) []byte { return f(bytes.Clone(good)) }
	other, _ := NewEndpoint(fill32(9), Options{})
	wrongKey, _ := other.SealHello(nil, hp)
	p, _ := pair(t, Options{})
	cases := []struct {
		name     string
		frame    []byte
		minEpoch uint64
		want     Verdict
	}{
		{"ok", good, testEpoch, VerdictOK},
		{"stale epoch", good, testEpoch + 1, VerdictStaleEpoch},
		{"wrong key", wrongKey, 0, VerdictBadTag},
		{"flipped nonce bit", mut(func(b []byte) []byte { b[HeaderLen+20] ^= 1; return b }), 0, VerdictBadTag},
		{"flipped tag bit", mut(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), 0, VerdictBadTag},
		{"truncated", good[:len(good)-1], 0, VerdictMalformed},
		{"extended", append(bytes.Clone(good), 0), 0, VerdictMalformed},
		{"version 3", mut(func(b []byte) []byte { b[2] = 3; return b }), 0, VerdictUnknownVersion},
		{"data frame", mustSeal(t, p, 0, 0), 0, VerdictMalformed},
		{"too large", make([]byte, DefaultMTU+1), 0, VerdictTooLarge},
		{"empty", nil, 0, VerdictMalformed},
	}
	for _, c := range cases {
		h, v, err := ep.OpenHello(c.frame, c.minEpoch)
		if v != c.want || (v == VerdictOK) != (err == nil) || VerdictOf(err) != v {
			t.Errorf("%s: verdict %v, err %v; want %v", c.name, v, err, c.want)
		}
		if v != VerdictOK && h != (Hello{}) {
			t.Errorf("%s: refused hello returned %+v", c.name, h)
		}
		if v == VerdictOK && (h.Nonce != hp.Nonce || h.Role != hp.Role || h.Epoch != hp.Epoch || h.Version != Version) {
			t.Errorf("%s: got %+v", c.name, h)
		}
	}
	var ve *VersionError
	_, _, err = ep.OpenHello(mut(func(b []byte) []byte { b[2] = 3; return b }), 0)
	if !errors.As(err, &ve) || ve.Version != 3 {
		t.Errorf("version error %v", err)
	}
}

// sealRaw seals arbitrary plaintext with s's keys and header fields as
// given: the way to make authentic-but-wrong frames.
func sealRaw(s *Session, h Header, plain []byte) []byte {
	buf := make([]byte, HeaderLen, HeaderLen+len(plain)+TagLen)
	h.put(buf)
	buf = append(buf, plain...)
	var nonce [12]byte
	nonce[4], nonce[5], nonce[6], nonce[7] = byte(h.Seq>>56), byte(h.Seq>>48), byte(h.Seq>>40), byte(h.Seq>>32)
	nonce[8], nonce[9], nonce[10], nonce[11] = byte(h.Seq>>24), byte(h.Seq>>16), byte(h.Seq>>8), byte(h.Seq)
	return s.tx.Seal(buf[:HeaderLen], nonce[:], buf[HeaderLen:], buf[:HeaderLen])
}

func TestOpenRejections(t *testing.T) {
	p, b := pair(t, Options{})
	p2, _ := pair(t, Options{}) // same keys (same fixed nonces) but we alter its id below
	good := func() []byte { return mustSeal(t, p, 0, 0, Progress{ICount: 5}) }
	mut := func(f func([]byte)) []byte { fr := good(); f(fr); return fr }
	hdr := func(seq uint64, count uint16) Header {
		return Header{Role: RolePrimary, Session: p.ID(), Epoch: testEpoch, Seq: seq, Count: count}
	}
	oldFrame := good()
	for range ReplayWindow + 1 {
		good()
	}
	replayed := good()
	replayedCopy := bytes.Clone(replayed)
	newest := good()
	progress, _ := AppendEntry(nil, Progress{ICount: 5})
	ack, _ := AppendEntry(nil, Ack{Seq: 1})
	hp, _ := hellos()
	helloFrame, _ := endpoint(t, Options{}).SealHello(nil, hp)

	cases := []struct {
		name  string
		frame []byte
		want  Verdict
	}{
		{"ok (newest)", newest, VerdictOK},
		{"ok (in window, out of order)", replayed, VerdictOK},
		{"replay", replayedCopy, VerdictReplay},
		{"too old", oldFrame, VerdictReplay},
		{"flipped ciphertext", mut(func(f []byte) { f[HeaderLen] ^= 0x80 }), VerdictBadTag},
		{"flipped header ack (associated data)", mut(func(f []byte) { f[30] ^= 1 }), VerdictBadTag},
		{"flipped header epoch", mut(func(f []byte) { f[19] ^= 1 }), VerdictBadTag},
		{"flipped tag", mut(func(f []byte) { f[len(f)-1] ^= 1 }), VerdictBadTag},
		{"truncated tag", good()[:HeaderLen+TagLen-1], VerdictMalformed},
		{"truncated by one", func() []byte { f := good(); return f[:len(f)-1] }(), VerdictBadTag},
		{"header only", good()[:HeaderLen], VerdictMalformed},
		{"short header", good()[:10], VerdictMalformed},
		{"two bytes", []byte{0x46, 0x54}, VerdictMalformed},
		{"bad magic", mut(func(f []byte) { f[0] = 0 }), VerdictMalformed},
		{"version 0", mut(func(f []byte) { f[2] = 0 }), VerdictUnknownVersion},
		{"version 3, short", []byte{0x46, 0x54, 3}, VerdictUnknownVersion},
		{"unknown flag", mut(func(f []byte) { f[3] = 0x80 }), VerdictMalformed},
		{"reserved byte", mut(func(f []byte) { f[5] = 1 }), VerdictMalformed},
		{"invalid role", mut(func(f []byte) { f[4] = 3 }), VerdictMalformed},
		{"reflected (own role)", mustSeal(t, b, 0, 0), VerdictWrongSession},
		{"hello frame", helloFrame, VerdictMalformed},
		{"other session id", mut(func(f []byte) { headerView(f).setSession(p.ID() + 1) }), VerdictWrongSession},
		{"sequence 0", sealRaw(p, hdr(0, 1), progress), VerdictMalformed},
		{"count mismatch (authentic)", sealRaw(p, hdr(1<<20, 2), progress), VerdictMalformed},
		{"garbage plaintext (authentic)", sealRaw(p, hdr(1<<20+1, 1), []byte{99, 0, 0}), VerdictMalformed},
		{"entry from wrong role (authentic)", sealRaw(p, hdr(1<<20+2, 1), ack), VerdictMalformed},
		{"too large", append(good(), make([]byte, DefaultMTU)...), VerdictTooLarge},
		{"empty", nil, VerdictMalformed},
	}
	_ = p2
	for _, c := range cases {
		before := b.Counters().Get(c.want)
		f, v, err := b.Open(c.frame)
		if v != c.want || (v == VerdictOK) != (err == nil) || VerdictOf(err) != v {
			t.Errorf("%s: verdict %v, err %v; want %v", c.name, v, err, c.want)
		}
		if v != VerdictOK && (f.Entries.Len() != 0 || f.Entries.Bytes() != nil || f.Header != (Header{})) {
			t.Errorf("%s: refused frame yielded %v", c.name, f)
		}
		if got := b.Counters().Get(c.want); got != before+1 {
			t.Errorf("%s: counter %v %d → %d", c.name, c.want, before, got)
		}
	}
	// The "reflected" case is refused before decryption by role; a frame
	// claiming the peer's role but sealed with our own direction's key fails
	// the tag: directions have distinct keys.
	reflect := sealRaw(b, Header{Role: RolePrimary, Session: b.ID(), Epoch: testEpoch, Seq: 1 << 30}, nil)
	if _, v, _ := b.Open(reflect); v != VerdictBadTag {
		t.Errorf("reflected with forged role: %v", v)
	}
}

func TestVersionErrorCarriesPeerVersion(t *testing.T) {
	_, b := pair(t, Options{})
	_, v, err := b.Open([]byte{0x46, 0x54, 9, 0, 1, 0})
	var ve *VersionError
	if v != VerdictUnknownVersion || !errors.As(err, &ve) || ve.Version != 9 || !errors.Is(err, ErrVersion) {
		t.Fatalf("%v %v", v, err)
	}
}

func TestEpochs(t *testing.T) {
	p, b := pair(t, Options{})
	b.SetEpoch(testEpoch + 1)
	if _, v, _ := b.Open(mustSeal(t, p, 0, 0)); v != VerdictStaleEpoch {
		t.Errorf("older epoch: %v", v)
	}
	p.SetEpoch(testEpoch + 5)
	f, v, _ := b.Open(mustSeal(t, p, 0, 0))
	if v != VerdictOK || f.Epoch != testEpoch+5 {
		t.Errorf("newer epoch: %v %d (the caller must see it)", v, f.Epoch)
	}
	p.SetEpoch(1) // never lowers
	if p.Epoch() != testEpoch+5 {
		t.Errorf("epoch lowered to %d", p.Epoch())
	}
}

func TestBatchLimits(t *testing.T) {
	p, b := pair(t, Options{})
	bt := p.NewBatch(make([]byte, 0, DefaultMTU), 0, 0)
	n := 0
	for {
		err := bt.Add(Progress{ICount: uint64(n)})
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if want := (DefaultMTU - Overhead) / 11; n != want {
		t.Errorf("%d progress entries per frame, want %d", n, want)
	}
	frame, seq, err := p.Seal(&bt)
	if err != nil || len(frame) > DefaultMTU || seq != 1 {
		t.Fatalf("%d bytes, seq %d, %v", len(frame), seq, err)
	}
	if f, v, _ := b.Open(frame); v != VerdictOK || f.Entries.Len() != n {
		t.Fatalf("%v %d", v, f.Entries.Len())
	}
	if _, _, err := p.Seal(&bt); err == nil {
		t.Error("sealed a batch twice")
	}
	if err := bt.Add(Progress{}); err == nil {
		t.Error("added to a sealed batch")
	}

	bt = p.NewBatch(nil, 0, 0)
	big := InputFrame{ICount: 1, Frame: make([]byte, 1514)}
	if EncodedLen(big) <= p.MaxEntry() {
		t.Fatalf("a 1514-byte input frame (%d encoded) fits a %d-byte MTU?", EncodedLen(big), DefaultMTU)
	}
	if err := bt.Add(big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized entry: %v", err)
	}
	if err := bt.Add(InputFrame{Frame: make([]byte, p.MaxEntry()-EntryHeaderLen-8)}); err != nil {
		t.Errorf("largest entry: %v", err)
	}
	if err := bt.Add(Progress{}); !errors.Is(err, ErrFull) {
		t.Errorf("full: %v", err)
	}
	for _, e := range []Entry{Ack{}, DivergenceAlarm{}, Hello{Role: RolePrimary}, nil, Fragment{ID: 1, Total: 1}} {
		if err := bt.Add(e); !errors.Is(err, ErrMalformed) {
			t.Errorf("primary adds %T: %v", e, err)
		}
	}
	bb := b.NewBatch(nil, 0, 0)
	for _, e := range []Entry{InputFrame{}, ClockSync{}, ConsoleInput{}, Progress{}, ReleasedOutput{}} {
		if err := bb.Add(e); !errors.Is(err, ErrMalformed) {
			t.Errorf("backup adds %T: %v", e, err)
		}
	}
}

func TestSequenceExhaustion(t *testing.T) {
	p, _ := pair(t, Options{})
	p.txSeq = ^uint64(0) - 1
	mustSeal(t, p, 0, 0)
	bt := p.NewBatch(nil, 0, 0)
	if _, _, err := p.Seal(&bt); !errors.Is(err, ErrExhausted) {
		t.Fatalf("sealed past 2^64-1: %v", err)
	}
}

func TestMTU(t *testing.T) {
	for _, m := range []int{MinMTU - 1, MaxMTU + 1, -5} {
		if _, err := NewEndpoint(testPSK, Options{MTU: m}); err == nil {
			t.Errorf("MTU %d accepted", m)
		}
	}
	p, b := pair(t, Options{MTU: MinMTU})
	big := ConsoleInput{ICount: 1, Data: frameBytes(4096, 3)}
	frs, err := p.Fragment(big, 77)
	if err != nil {
		t.Fatal(err)
	}
	var got Entry
	for _, fr := range frs {
		frame := mustSeal(t, p, 0, 0, fr)
		if len(frame) != MinMTU && fr.Offset+uint32(len(fr.Piece)) != fr.Total {
			t.Errorf("fragment frame of %d bytes does not fill the MTU", len(frame))
		}
		f, v, err := b.Open(frame)
		if v != VerdictOK {
			t.Fatal(v, err)
		}
		for e := range f.Entries.All() {
			if got, err = b.Reassemble(f.Seq, e.(Fragment)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !reflect.DeepEqual(got, big) {
		t.Fatalf("reassembled %#v", got)
	}
}

// sendFragments seals each fragment in its own frame and opens it at b,
// returning the opened fragments with their frame seqs.
type arrived struct {
	seq uint64
	f   Fragment
}

func sendFragments(t *testing.T, p, b *Session, frs []Fragment) []arrived {
	t.Helper()
	var out []arrived
	for _, fr := range frs {
		f, v, err := b.Open(mustSeal(t, p, 0, 0, fr))
		if v != VerdictOK {
			t.Fatal(v, err)
		}
		for e := range f.Entries.All() {
			out = append(out, arrived{f.Seq, e.(Fragment)})
		}
	}
	return out
}

func TestFragmentationStandardFrame(t *testing.T) {
	p, b := pair(t, Options{})
	e := InputFrame{ICount: 31337, Frame: frameBytes(1514, 9)}
	frs, err := p.Fragment(e, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(frs) != 2 {
		t.Fatalf("%d fragments", len(frs))
	}
	for _, fr := range frs {
		if EncodedLen(fr) > p.MaxEntry() {
			t.Fatalf("fragment of %d encoded bytes > %d", EncodedLen(fr), p.MaxEntry())
		}
	}
	got := sendFragments(t, p, b, frs)
	slices.Reverse(got)
	var out Entry
	for i, a := range got {
		r, err := b.Reassemble(a.seq, a.f)
		if err != nil {
			t.Fatal(err)
		}
		if (r != nil) != (i == len(got)-1) {
			t.Fatalf("fragment %d completed=%v", i, r != nil)
		}
		out = r
	}
	if !reflect.DeepEqual(out, e) {
		t.Fatal("reassembled entry differs")
	}
	// A late duplicate of a completed entry's fragment is dropped quietly.
	if r, err := b.Reassemble(got[0].seq, got[0].f); r != nil || err != nil || b.reasm.Pending() != 0 {
		t.Fatalf("late duplicate: %v %v pending %d", r, err, b.reasm.Pending())
	}
}

// TestReassemblyShuffledWithDuplicates: random piece sizes, random order,
// random duplicates, several entries interleaved.
func TestReassemblyShuffledWithDuplicates(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 300 {
		r := NewReassembler(ReassemblyLimits{})
		want := map[uint64]Entry{}
		var all []arrived
		for id := range uint64(1 + rng.IntN(4)) {
			e := randEntry(rng, RolePrimary)
			if _, ok := e.(Fragment); ok {
				e = ConsoleInput{ICount: id, Data: frameBytes(rng.IntN(3000), byte(id))}
			}
			want[id] = e
			frs, err := Fragments(e, id, EntryHeaderLen+fragmentHead+1+rng.IntN(200))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range frs {
				all = append(all, arrived{uint64(iter), f})
				if rng.IntN(4) == 0 {
					all = append(all, arrived{uint64(iter), f})
				}
			}
		}
		rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		got := map[uint64]Entry{}
		for _, a := range all {
			e, err := r.Add(a.seq, a.f)
			if err != nil {
				t.Fatalf("iter %d: %v", iter, err)
			}
			if e != nil {
				if _, dup := got[a.f.ID]; dup {
					t.Fatalf("iter %d: entry %d completed twice", iter, a.f.ID)
				}
				got[a.f.ID] = e
			}
		}
		if !reflect.DeepEqual(got, want) || r.Pending() != 0 {
			t.Fatalf("iter %d: got %d entries of %d, pending %d", iter, len(got), len(want), r.Pending())
		}
	}
}

func TestReassemblyRejections(t *testing.T) {
	enc, _ := AppendEntry(nil, ConsoleInput{ICount: 1, Data: frameBytes(100, 1)})
	total := uint32(len(enc))
	frag := func(id uint64, off, end int) Fragment {
		return Fragment{ID: id, Offset: uint32(off), Total: total, Piece: enc[off:end]}
	}
	type step struct {
		seq  uint64
		f    Fragment
		want error // nil: accepted (incomplete)
	}
	cases := []struct {
		name  string
		lim   ReassemblyLimits
		steps []step
	}{
		{"overlap", ReassemblyLimits{}, []step{{1, frag(1, 0, 50), nil}, {1, frag(1, 40, 60), ErrReassembly}}},
		{"overlap before", ReassemblyLimits{}, []step{{1, frag(1, 50, 80), nil}, {1, frag(1, 40, 60), ErrReassembly}}},
		{"same span, other bytes", ReassemblyLimits{}, []step{{1, frag(1, 0, 50), nil},
			{1, Fragment{ID: 1, Total: total, Piece: make([]byte, 50)}, ErrReassembly}}},
		{"inconsistent total", ReassemblyLimits{}, []step{{1, frag(1, 0, 50), nil},
			{1, Fragment{ID: 1, Offset: 50, Total: total + 1, Piece: enc[50:]}, ErrReassembly}}},
		{"too large", ReassemblyLimits{MaxSize: 64}, []step{{1, frag(1, 0, 50), ErrTooLarge}}},
		{"too many partial", ReassemblyLimits{MaxPartial: 2}, []step{{1, frag(1, 0, 10), nil}, {1, frag(2, 0, 10), nil},
			{1, frag(3, 0, 10), ErrReassembly}}},
		{"piece past total", ReassemblyLimits{}, []step{{1, Fragment{ID: 1, Offset: total - 1, Total: total, Piece: enc[:2]}, ErrMalformed}}},
		{"empty piece", ReassemblyLimits{}, []step{{1, Fragment{ID: 1, Total: total}, ErrMalformed}}},
		{"a fragment inside", ReassemblyLimits{}, func() []step {
			inner, _ := AppendEntry(nil, Fragment{ID: 2, Total: 1, Piece: []byte{0}})
			return []step{{1, Fragment{ID: 1, Total: uint32(len(inner)), Piece: inner}, ErrReassembly}}
		}()},
		{"two entries inside", ReassemblyLimits{}, func() []step {
			inner, _ := AppendEntry(nil, Progress{})
			inner, _ = AppendEntry(inner, Progress{})
			return []step{{1, Fragment{ID: 1, Total: uint32(len(inner)), Piece: inner}, ErrReassembly}}
		}()},
		{"garbage inside", ReassemblyLimits{}, []step{{1, Fragment{ID: 1, Total: 3, Piece: []byte{1, 2, 3}}, ErrReassembly}}},
	}
	for _, c := range cases {
		r := NewReassembler(c.lim)
		for i, s := range c.steps {
			e, err := r.Add(s.seq, s.f)
			if (s.want == nil && err != nil) || (s.want != nil && !errors.Is(err, s.want)) || e != nil {
				t.Errorf("%s step %d: %v %v, want %v", c.name, i, e, err, s.want)
			}
		}
		if c.name == "overlap" && r.Pending() != 0 {
			t.Errorf("overlap kept the poisoned partial entry")
		}
	}

	// Timeout in sequence numbers: first fragment at seq 10, timeout 5.
	r := NewReassembler(ReassemblyLimits{Timeout: 5})
	r.Add(10, frag(1, 0, 50))
	r.Add(14, frag(2, 0, 50))
	if r.Pending() != 2 {
		t.Fatal(r.Pending())
	}
	if e, err := r.Add(15, frag(1, 50, len(enc))); e != nil || err != nil {
		t.Fatalf("completed an expired entry: %v %v", e, err)
	}
	if r.Expired() != 1 || r.Pending() != 2 { // 1 expired; the late piece started a new partial
		t.Fatalf("expired %d pending %d", r.Expired(), r.Pending())
	}
	if n := r.Expire(100); n != 2 || r.Pending() != 0 {
		t.Fatalf("expire: %d, pending %d", n, r.Pending())
	}

	// Through a session: failures and time-outs are counted; an entry the
	// peer may not send is refused even when whole.
	p, b := pair(t, Options{Reassembly: ReassemblyLimits{Timeout: 3}})
	_ = p
	ackEnc, _ := AppendEntry(nil, Ack{Seq: 1})
	if _, err := b.Reassemble(1, Fragment{ID: 1, Total: uint32(len(ackEnc)), Piece: ackEnc}); !errors.Is(err, ErrReassembly) {
		t.Errorf("ack from primary reassembled: %v", err)
	}
	b.Reassemble(2, frag(2, 0, 10))
	b.Reassemble(9, frag(3, 0, 10))
	if got := b.Counters().Get(VerdictReassembly); got != 2 {
		t.Errorf("reassembly counter %d, want 2", got)
	}
	if _, err := b.Reassemble(9, Fragment{ID: 4, Total: MaxEncoded + 1, Piece: []byte{1}}); !errors.Is(err, ErrTooLarge) || b.Counters().Get(VerdictTooLarge) != 1 {
		t.Errorf("too large: %v", err)
	}
	if _, err := Fragments(Progress{}, 1, EntryHeaderLen+fragmentHead); !errors.Is(err, ErrTooLarge) {
		t.Errorf("fragments with no room: %v", err)
	}
	if _, err := Fragments(Fragment{ID: 1, Total: 1, Piece: []byte{1}}, 1, 100); err == nil {
		t.Errorf("fragmented a fragment")
	}
	if _, err := b.Fragment(InputFrame{}, 1); !errors.Is(err, ErrMalformed) {
		t.Errorf("backup fragments an input frame: %v", err)
	}
}

// TestReplayWindowModel checks the bitmap window against a plain set.
func TestReplayWindowModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 50 {
		var w replayWindow
		seen := map[uint64]bool{}
		var top uint64
		for range 5000 {
			var seq uint64
			switch rng.IntN(4) {
			case 0:
				seq = top + 1 + uint64(rng.IntN(3000))
			default:
				seq = top - min(top, uint64(rng.IntN(ReplayWindow+200)))
			}
			want := seq != 0 && !seen[seq] && (seq > top || top-seq < ReplayWindow)
			if got := w.check(seq); got != want {
				t.Fatalf("seq %d top %d: check %v, want %v", seq, top, got, want)
			}
			if want {
				w.mark(seq)
				seen[seq] = true
				top = max(top, seq)
			}
		}
	}
}

// randEntry makes a random entry that role may send (Fragment included).
func randEntry(rng *rand.Rand, role Role) Entry {
	u := rng.Uint64
	bytesN := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	sum := func() (s [32]byte) { copy(s[:], bytesN(32)); return }
	if role == RoleBackup {
		switch rng.IntN(4) {
		case 0:
			return Ack{Seq: u(), ICount: u()}
		case 1:
			return Heartbeat{Time: u(), ICount: u()}
		case 2:
			return Digest{ICount: u(), Sum: sum()}
		}
		return DivergenceAlarm{ICount: u(), Local: sum(), Remote: sum()}
	}
	switch rng.IntN(8) {
	case 0:
		return InputFrame{ICount: u(), Frame: bytesN(rng.IntN(1400))}
	case 1:
		return ClockSync{ICount: u(), Time: u(), RateNum: u(), RateDen: u()}
	case 2:
		return ConsoleInput{ICount: u(), Data: bytesN(rng.IntN(100))}
	case 3:
		return Progress{ICount: u()}
	case 4:
		return ReleasedOutput{Watermark: u()}
	case 5:
		return Digest{ICount: u(), Sum: sum()}
	case 6:
		return Heartbeat{Time: u(), ICount: u()}
	}
	total := uint32(1 + rng.IntN(5000))
	off := uint32(rng.IntN(int(total)))
	return Fragment{ID: u(), Offset: off, Total: total, Piece: bytesN(1 + rng.IntN(int(min(total-off, 500))))}
}

// TestPropertyRoundTrip: decode(encode(x)) == x, for the entry codec alone
// and through Seal/Open, over random batches in both directions.
func TestPropertyRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	p, b := pair(t, Options{})
	buf := make([]byte, 0, DefaultMTU)
	for iter := range 2000 {
		from, to := p, b
		if iter%2 == 1 {
			from, to = b, p
		}
		var want []Entry
		var plain []byte
		ack, base := rng.Uint64(), rng.Uint64()
		bt := from.NewBatch(buf, ack, base)
		for {
			e := randEntry(rng, from.Role())
			err := bt.Add(e)
			if errors.Is(err, ErrFull) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, e)
			plain, _ = AppendEntry(plain, e)
		}
		es, err := ParseEntries(plain)
		if err != nil || !reflect.DeepEqual(collect(es), want) {
			t.Fatalf("iter %d: codec round trip: %v", iter, err)
		}
		frame, seq, err := from.Seal(&bt)
		if err != nil {
			t.Fatal(err)
		}
		if len(frame) != Overhead+len(plain) || len(frame) > DefaultMTU {
			t.Fatalf("iter %d: frame of %d bytes for %d of entries", iter, len(frame), len(plain))
		}
		f, v, err := to.Open(frame)
		if v != VerdictOK {
			t.Fatalf("iter %d: %v %v", iter, v, err)
		}
		if f.Seq != seq || f.Ack != ack || f.Base != base || int(f.Count) != len(want) {
			t.Fatalf("iter %d: header %v", iter, f.Header)
		}
		if got := collect(f.Entries); !reflect.DeepEqual(got, want) {
			t.Fatalf("iter %d: entries differ", iter)
		}
	}
}

func TestDecodeEntryRejects(t *testing.T) {
	for _, c := range []struct {
		t    Type
		body []byte
	}{
		{0, nil}, {TypeFragment + 1, make([]byte, 8)}, {TypeProgress, make([]byte, 7)}, {TypeProgress, make([]byte, 9)},
		{TypeInputFrame, make([]byte, 7)}, {TypeClockSync, make([]byte, 31)}, {TypeDigest, make([]byte, 41)},
		{TypeAck, make([]byte, 15)}, {TypeDivergenceAlarm, make([]byte, 71)}, {TypeHello, make([]byte, helloBody)},
		{TypeFragment, make([]byte, fragmentHead)}, {TypeFragment, make([]byte, fragmentHead+1)},
		{TypeInSync + 1, make([]byte, 8)}, {TypeInSync, make([]byte, 7)}, {TypeSnapshot, make([]byte, snapshotHead-1)},
		{TypeSnapshot, make([]byte, snapshotHead)}, // total 0
		{TypeSnapshot, snapBody(10, 8, 3)},         // piece past the total
		{TypeSnapshot, snapBody(10, 11, 0)},        // offset past the total
	} {
		if e, err := DecodeEntry(c.t, c.body); err == nil || !errors.Is(err, ErrMalformed) {
			t.Errorf("%v with %d bytes: %v %v", c.t, len(c.body), e, err)
		}
	}
	if _, err := ParseEntries([]byte{byte(TypeProgress), 0, 8, 1}); err == nil {
		t.Error("short body accepted")
	}
	if _, err := ParseEntries([]byte{byte(TypeProgress), 0}); err == nil {
		t.Error("short entry header accepted")
	}
	if _, err := AppendEntry(nil, InputFrame{Frame: make([]byte, MaxBody)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized body: %v", err)
	}
}

func TestVerdictNames(t *testing.T) {
	for v := range NumVerdicts {
		if v.String() == "" || VerdictOf(errors.New("x")) != VerdictMalformed {
			t.Fatal(v)
		}
	}
	if Verdict(200).String() != "verdict(200)" || Type(200).String() != "type(200)" || Role(9).String() != "role(9)" {
		t.Error("strings of unknown values")
	}
	var c Counters
	c.Add(NumVerdicts)
	if c.Get(NumVerdicts) != 0 || c.Snapshot() != [NumVerdicts]uint64{} {
		t.Error("out-of-range verdict counted")
	}
}

// TestNoAllocs: building and sealing a batch into a reused buffer, and
// opening it, allocate nothing.
func TestNoAllocs(t *testing.T) {
	p, b := pair(t, Options{})
	buf := make([]byte, 0, DefaultMTU)
	rx := make([]byte, DefaultMTU)
	data := frameBytes(200, 1)
	var frame []byte
	allocs := testing.AllocsPerRun(100, func() {
		bt := p.NewBatch(buf, 1, 2)
		_ = bt.Add(InputFrame{ICount: 5, Frame: data})
		_ = bt.Add(ClockSync{ICount: 5, Time: 6, RateNum: 1, RateDen: 1})
		_ = bt.Add(Progress{ICount: 9})
		_ = bt.Add(ReleasedOutput{Watermark: 3})
		_ = bt.Add(Digest{ICount: 9})
		frame, _, _ = p.Seal(&bt)
	})
	if allocs != 0 {
		t.Errorf("batch+seal: %v allocs", allocs)
	}
	allocs = testing.AllocsPerRun(100, func() {
		b.win = replayWindow{}
		n := copy(rx, frame)
		f, v, _ := b.Open(rx[:n])
		if v != VerdictOK {
			panic(v)
		}
		for t, body := range f.Entries.Raw() {
			_, _ = t, body
		}
	})
	if allocs != 0 {
		t.Errorf("open: %v allocs", allocs)
	}
}

// TestHelloInconsistentButAuthentic: a correctly tagged hello whose body
// disagrees with its header, or speaks another version, is refused.
func TestHelloInconsistentButAuthentic(t *testing.T) {
	ep := endpoint(t, Options{})
	hp, _ := hellos()
	build := func(h Header, body Hello, bodyVersion uint8) []byte {
		b := make([]byte, HeaderLen)
		h.put(b)
		b = appendEntry(b, body)
		b[HeaderLen+EntryHeaderLen] = bodyVersion
		var tag [TagLen]byte
		ep.helloTag(&tag, b)
		return append(b, tag[:]...)
	}
	hdr := Header{Flags: FlagHello, Role: RolePrimary, Count: 1, Epoch: testEpoch}
	for _, c := range []struct {
		name  string
		frame []byte
		want  Verdict
	}{
		{"consistent", build(hdr, hp, Version), VerdictOK},
		{"body version 3", build(hdr, hp, 3), VerdictUnknownVersion},
		{"body role differs", build(Header{Flags: FlagHello, Role: RoleBackup, Count: 1, Epoch: testEpoch}, hp, Version), VerdictMalformed},
		{"body epoch differs", build(Header{Flags: FlagHello, Role: RolePrimary, Count: 1, Epoch: 1}, hp, Version), VerdictMalformed},
		{"nonzero seq", build(Header{Flags: FlagHello, Role: RolePrimary, Count: 1, Epoch: testEpoch, Seq: 1}, hp, Version), VerdictMalformed},
		{"not a hello entry", func() []byte {
			b := make([]byte, HeaderLen)
			hdr.put(b)
			b = appendEntry(b, InputFrame{Frame: make([]byte, helloBody-8)})
			var tag [TagLen]byte
			ep.helloTag(&tag, b)
			return append(b, tag[:]...)
		}(), VerdictMalformed},
	} {
		if _, v, err := ep.OpenHello(c.frame, 0); v != c.want {
			t.Errorf("%s: %v %v, want %v", c.name, v, err, c.want)
		}
	}
	if ep.Counters().Get(VerdictOK) != 1 || ep.MTU() != DefaultMTU {
		t.Error("endpoint accessors")
	}
}

func snapBody(total, offset uint64, n int) []byte {
	b := make([]byte, snapshotHead+n)
	binary.BigEndian.PutUint64(b[16:], total)
	binary.BigEndian.PutUint64(b[24:], offset)
	return b
}

func TestSnapshotEntryRoundTrip(t *testing.T) {
	s := Snapshot{ICount: 1, Outputs: 2, Total: 10, Offset: 6, Sum: fill32(3), Data: []byte{1, 2, 3, 4}}
	b, err := AppendEntry(nil, s)
	if err != nil || len(b) != SnapshotHead+4 {
		t.Fatalf("encode: %d bytes, %v", len(b), err)
	}
	es, err := ParseEntries(b)
	if err != nil {
		t.Fatal(err)
	}
	for e := range es.All() {
		g, ok := e.(Snapshot)
		if !ok || g.ICount != 1 || g.Outputs != 2 || g.Total != 10 || g.Offset != 6 || g.Sum != s.Sum || !bytes.Equal(g.Data, s.Data) {
			t.Fatalf("decoded %+v", e)
		}
	}
	if _, err := AppendEntry(nil, Snapshot{Total: 3, Data: []byte{1, 2, 3, 4}}); !errors.Is(err, ErrMalformed) {
		t.Errorf("oversized piece encoded: %v", err)
	}
	if !TypeSnapshot.AllowedFrom(RolePrimary) || TypeSnapshot.AllowedFrom(RoleBackup) || TypeInSync.AllowedFrom(RoleBackup) {
		t.Error("snapshot entries must come from the primary only")
	}
}
