package e2e

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"ftbox/ftcore/logwire"
	"ftbox/tap"
	"ftbox/tools/testenv"
)

// logTap is a raw port on one box's end of the logging link. What it
// writes arrives at the other box, exactly as that box's peer's frames do;
// what it reads is what the other box sent to this one (a raw port never
// reads outgoing frames), recorded while rec is set.
type logTap struct {
	port   *tap.Raw
	mu     sync.Mutex
	rec    bool
	frames [][]byte // whole Ethernet frames
}

func openLogTap(t *testing.T, ns string) *logTap {
	t.Helper()
	var p *tap.Raw
	if err := testenv.InNetNS(ns, func() error {
		var err error
		p, err = tap.OpenRaw("log0", tap.EtherTypeLog)
		return err
	}); err != nil {
		t.Fatalf("raw port on %s/log0: %v", ns, err)
	}
	lt := &logTap{port: p}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, err := p.ReadFrame(buf)
			if errors.Is(err, tap.ErrTruncated) {
				continue
			}
			if err != nil {
				return
			}
			lt.mu.Lock()
			if lt.rec {
				lt.frames = append(lt.frames, append([]byte(nil), buf[:n]...))
			}
			lt.mu.Unlock()
		}
	}()
	t.Cleanup(func() { p.Close(); <-done })
	return lt
}

func (lt *logTap) record(on bool) {
	lt.mu.Lock()
	lt.rec = on
	lt.mu.Unlock()
}

// dataFrames returns up to max recorded frames that are not hellos, the
// latest ones.
func (lt *logTap) dataFrames(max int) [][]byte {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	var out [][]byte
	for _, f := range lt.frames {
		if len(f) >= 14+logwire.Overhead && f[14+3]&byte(logwire.FlagHello) == 0 {
			out = append(out, f)
		}
	}
	if len(out) > max {
		out = out[len(out)-max:]
	}
	return out
}

// injection is one frame to put on the logging link and the reason the
// receiving box must count it under (counters.log_frames_rejected).
type injection struct {
	kind, want string
	frame      []byte // whole Ethernet frame
}

// Offsets in a whole Ethernet frame of the logwire header's fields.
const (
	offMagic   = 14 + 0
	offVersion = 14 + 2
	offRes     = 14 + 5
	offSession = 14 + 8
	offSeq     = 14 + 20
	offBody    = 14 + logwire.HeaderLen
)

func seqOf(f []byte) uint64 { return binary.BigEndian.Uint64(f[offSeq:]) }

func flip(f []byte, off int, bit uint) []byte {
	g := append([]byte(nil), f...)
	g[off] ^= 1 << bit
	return g
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// wrongKeySession makes a logwire session of the sender's role under a key
// that is not the pair's: what someone without the key can produce.
func wrongKeySession(t *testing.T, sender logwire.Role, epoch uint64) (*logwire.Endpoint, *logwire.Session) {
	t.Helper()
	var psk [logwire.KeySize]byte
	copy(psk[:], randomBytes(t, logwire.KeySize))
	ep, err := logwire.NewEndpoint(psk, logwire.Options{})
	if err != nil {
		t.Fatal(err)
	}
	local := logwire.Hello{Version: logwire.Version, Role: sender, Epoch: epoch}
	peer := logwire.Hello{Version: logwire.Version, Role: sender.Peer(), Epoch: epoch}
	copy(local.Nonce[:], randomBytes(t, 32))
	copy(peer.Nonce[:], randomBytes(t, 32))
	peer.Echo = local.Nonce
	s, err := ep.NewSession(local, peer)
	if err != nil {
		t.Fatal(err)
	}
	return ep, s
}

// injections builds what to send to the box that received captured (the
// peer's real frames to it, oldest first): forged, replayed and corrupted.
func injections(t *testing.T, captured [][]byte) []injection {
	t.Helper()
	tmpl := captured[len(captured)-1]
	eth := append([]byte(nil), tmpl[:14]...)
	hdr, err := logwire.ParseHeader(tmpl[14:])
	if err != nil {
		t.Fatalf("a captured frame does not parse: %v", err)
	}
	var top uint64
	for _, f := range captured {
		top = max(top, seqOf(f))
	}
	fresh := top + 1_000_000 // far above anything the peer will send during the test
	next := func() uint64 { fresh++; return fresh }
	var out []injection
	add := func(kind, want string, f []byte) { out = append(out, injection{kind, want, f}) }

	// (a) Forged. A valid-looking header of the live session (session id,
	// role and epoch are in the clear), a fresh sequence number, random
	// bytes for entries and tag: the AEAD tag fails.
	for range 10 {
		f := append(append([]byte(nil), tmpl[:offBody]...), randomBytes(t, 64+int(randomBytes(t, 1)[0]))...)
		binary.BigEndian.PutUint64(f[offSeq:], next())
		add("forged: random bytes after a valid header", "bad_tag", f)
	}
	// Sealed under a wrong key with logwire itself: input for the backup's
	// guest, or acks that would release the primary's held outputs.
	ep, ws := wrongKeySession(t, hdr.Role, hdr.Epoch)
	seal := func() []byte {
		b := ws.NewBatch(nil, 0, 1)
		var e logwire.Entry = logwire.Ack{Seq: 1 << 40, ICount: 1 << 40}
		if hdr.Role == logwire.RolePrimary {
			e = logwire.InputFrame{ICount: 1 << 40, Frame: randomBytes(t, 60)}
		}
		if err := b.Add(e); err != nil {
			t.Fatal(err)
		}
		f, _, err := ws.Seal(&b)
		if err != nil {
			t.Fatal(err)
		}
		return append(append([]byte(nil), eth...), f...)
	}
	for range 5 {
		add("forged: sealed with a wrong key (its own session id)", "wrong_session", seal())
	}
	for range 10 {
		f := seal()
		copy(f[offSession:offSession+4], tmpl[offSession:offSession+4])
		binary.BigEndian.PutUint64(f[offSeq:], next())
		add("forged: sealed with a wrong key, the live session's id", "bad_tag", f)
	}
	for range 5 {
		h := logwire.Hello{Version: logwire.Version, Role: hdr.Role, Epoch: hdr.Epoch}
		copy(h.Nonce[:], randomBytes(t, 32))
		f, err := ep.SealHello(nil, h)
		if err != nil {
			t.Fatal(err)
		}
		add("forged: hello under a wrong key", "bad_tag", append(append([]byte(nil), eth...), f...))
	}

	// (b) Replayed: every captured frame, verbatim.
	for _, f := range captured {
		add("replayed: captured frame resent verbatim", "replay", f)
	}

	// (c) Corrupted: captured frames with a bit flipped, or cut short.
	for i := range 5 {
		f := captured[i%len(captured)]
		add("corrupted: a bit of the sealed entries or tag (sequence number intact)", "replay", flip(f, offBody+int(randomBytes(t, 1)[0])%(len(f)-offBody), uint(i%8)))
		add("corrupted: a bit of the sequence number (authenticated header)", "bad_tag", flip(f, offSeq+3, uint(i%8)))
		add("corrupted: a bit of the magic", "malformed", flip(f, offMagic+i%2, uint(i%8)))
		add("corrupted: a bit of the session id", "wrong_session", flip(f, offSession+i%4, uint(i%8)))
	}
	for i := range 3 {
		f := captured[i%len(captured)]
		add("corrupted: the version byte", "unknown_version", flip(f, offVersion, 0))
		add("corrupted: the reserved byte", "malformed", flip(f, offRes, uint(i)))
		add("corrupted: truncated inside the header", "malformed", append([]byte(nil), f[:14+40]...))
	}
	return out
}

// TestInjectLogLink puts forged, replayed and corrupted frames on the
// logging link of a PROTECTED pair serving a counting client, towards
// both boxes: each is rejected and counted under its reason in `ftbox status
// --json`, the pair stays PROTECTED in its epoch with no divergence
// (digests compared after the injection match), and the client loses
// nothing.
func TestInjectLogLink(t *testing.T) {
	l := Up(t)
	before := map[string]*Status{}
	for box, role := range map[string]string{"a": "PRIMARY", "b": "BACKUP"} {
		s := l.mustStatus(box)
		if s.Role != role || s.Protection != "PROTECTED" {
			t.Fatalf("box %s: %s %s, want %s PROTECTED", box, s.Role, s.Protection, role)
		}
		before[box] = s
	}
	// tapA sits on box A's log0: it reads what B sends A and its frames
	// arrive at B. tapB the other way round.
	tapA, tapB := openLogTap(t, "ftboxa"), openLogTap(t, "ftboxb")
	ctx, cancel := context.WithTimeout(context.Background(), 7*time.Second)
	defer cancel()
	counter := l.Counter(ctx, "inject")

	tapA.record(true)
	tapB.record(true)
	time.Sleep(800 * time.Millisecond) // real traffic both ways: the counter's inputs, acks, heartbeats
	tapA.record(false)
	tapB.record(false)
	toA, toB := tapA.dataFrames(40), tapB.dataFrames(40)
	if len(toA) < 10 || len(toB) < 10 {
		t.Fatalf("captured %d frames B→A and %d A→B: too few", len(toA), len(toB))
	}
	t.Logf("captured %d log frames A→B and %d B→A", len(toB), len(toA))

	plan := map[string][]injection{"b": injections(t, toB), "a": injections(t, toA)}
	via := map[string]*logTap{"b": tapA, "a": tapB}
	injectStart := time.Now()
	for _, box := range []string{"b", "a"} {
		for i, in := range plan[box] {
			if err := via[box].port.WriteFrame(in.frame); err != nil {
				t.Fatalf("inject %q towards box %s: %v", in.kind, box, err)
			}
			if i%8 == 7 {
				time.Sleep(time.Millisecond) // no burst beyond the socket buffers
			}
		}
	}
	injectEnd := time.Now()
	t.Logf("injected %d frames towards box b and %d towards box a in %.1f ms",
		len(plan["b"]), len(plan["a"]), msf(injectEnd.Sub(injectStart)))

	// Every injected frame counted under its reason, and nothing else
	// rejected meanwhile.
	want := map[string]map[string]uint64{}
	for box, ins := range plan {
		want[box] = map[string]uint64{}
		kinds := map[string]int{}
		for _, in := range ins {
			want[box][in.want]++
			kinds[in.kind+" → "+in.want]++
		}
		if box == "b" {
			var lines []string
			for k, n := range kinds {
				lines = append(lines, fmt.Sprintf("%3d × %s", n, k))
			}
			sort.Strings(lines)
			t.Logf("towards each box:\n  %s", strings.Join(lines, "\n  "))
		}
	}
	delta := func(box string, s *Status) map[string]uint64 {
		d := map[string]uint64{}
		for k, v := range s.Counters.LogFramesRejected {
			if n := v - before[box].Counters.LogFramesRejected[k]; n != 0 {
				d[k] = n
			}
		}
		return d
	}
	for _, box := range []string{"a", "b"} {
		var got map[string]uint64
		deadline := time.Now().Add(2 * time.Second)
		for {
			got = delta(box, l.mustStatus(box))
			if fmt.Sprint(got) == fmt.Sprint(want[box]) || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("box %s: log_frames_rejected grew by %v", box, got)
		if fmt.Sprint(got) != fmt.Sprint(want[box]) {
			t.Errorf("box %s: log_frames_rejected grew by %v, want %v", box, got, want[box])
		}
	}

	// Nothing applied: a digest comparison after the injection still
	// matches, and the pair is as it was.
	var compared uint64
	for _, box := range []string{"a", "b"} {
		compared = max(compared, l.mustStatus(box).Replication.DigestsCompared)
	}
	l.WaitFor("b", 3*time.Second, "comparing a digest after the injection", func(s *Status, _ int) bool {
		return s.Replication.DigestsCompared > compared
	})
	cancel() // the client has counted across the injection and the digest after it
	r := <-counter
	for box, role := range map[string]string{"a": "PRIMARY", "b": "BACKUP"} {
		s := l.mustStatus(box)
		t.Logf("box %s: %s %s epoch %d, digests compared %d, mismatches %d", box, s.Role, s.Protection, s.Epoch,
			s.Replication.DigestsCompared, s.Replication.DigestMismatch)
		if s.Role != role || s.Protection != "PROTECTED" || s.Epoch != before[box].Epoch || s.LastFailover != nil {
			t.Errorf("box %s after the injection: %s %s epoch %d (was %d), last failover %+v", box, s.Role, s.Protection,
				s.Epoch, before[box].Epoch, s.LastFailover)
		}
		if s.Replication.DigestMismatch != 0 {
			t.Errorf("box %s: %d digest mismatches: the replica diverged", box, s.Replication.DigestMismatch)
		}
	}
	checkCounter(t, r, injectEnd)
}
