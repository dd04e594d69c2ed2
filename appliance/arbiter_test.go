package appliance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ftbox/ftcore"
)

func arbTestKey(seed byte) (k [KeySize]byte) {
	for i := range k {
		k[i] = seed + byte(i)
	}
	return k
}

type testArbiter struct {
	srv  *ArbiterServer
	addr string
	conn net.PacketConn
	done chan error
}

// startArbiter runs an arbiter on a loopback UDP port.
func startArbiter(t *testing.T, cfg ArbiterServerConfig) *testArbiter {
	t.Helper()
	srv, err := NewArbiterServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	ta := &testArbiter{srv: srv, addr: pc.LocalAddr().String(), conn: pc, done: make(chan error, 1)}
	go func() { ta.done <- srv.Serve(pc) }()
	t.Cleanup(ta.stop)
	return ta
}

func (ta *testArbiter) stop() {
	if ta.conn == nil {
		return
	}
	ta.conn.Close()
	<-ta.done
	ta.srv.Close()
	ta.conn = nil
}

func arbClient(t *testing.T, addr string, psk [KeySize]byte, opts ArbiterClientOptions) *ArbiterClient {
	t.Helper()
	c, err := NewArbiterClient(addr, psk, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func stateCfg(t *testing.T, keys ...[KeySize]byte) ArbiterServerConfig {
	return ArbiterServerConfig{Keys: keys, StatePath: filepath.Join(t.TempDir(), "arbiter.state"), Init: true}
}

// TestArbiterMatchesMemArbiter drives the real service and ftcore's
// in-memory arbiter with the same random claims: same answers.
func TestArbiterMatchesMemArbiter(t *testing.T) {
	psk := arbTestKey(1)
	ta := startArbiter(t, stateCfg(t, psk))
	c := arbClient(t, ta.addr, psk, ArbiterClientOptions{Timeout: 2 * time.Second})
	var mem ftcore.MemArbiter
	rng := rand.New(rand.NewPCG(1, 2))
	who := []string{"boxa", "boxb", "boxc"}
	for i := range 300 {
		e, w := rng.Uint64N(8), who[rng.IntN(len(who))]
		if rng.IntN(4) == 0 { // walk upwards now and then
			e += uint64(i / 10)
		}
		want, _ := mem.TestAndSet(e, w)
		got, err := c.TestAndSet(e, w)
		if err != nil {
			t.Fatalf("claim %d by %s: %v", e, w, err)
		}
		if got != want {
			t.Fatalf("step %d: claim %d by %s: won %v, MemArbiter says %v", i, e, w, got, want)
		}
	}
	st := ta.srv.Stats()
	if int(st.Granted) != len(mem.Grants()) {
		t.Errorf("granted %d, MemArbiter %d", st.Granted, len(mem.Grants()))
	}
	if st.BadMAC+st.Malformed+st.Replayed+st.UnknownPair != 0 {
		t.Errorf("honest traffic counted as bad: %+v", st)
	}
}

// TestArbiterConcurrentClaims: many claimants race for each epoch; exactly
// one wins, and every loser is told who did.
func TestArbiterConcurrentClaims(t *testing.T) {
	psk := arbTestKey(2)
	ta := startArbiter(t, stateCfg(t, psk))
	const claimants, rounds = 48, 8
	c := arbClient(t, ta.addr, psk, ArbiterClientOptions{Timeout: 5 * time.Second})
	for epoch := uint64(1); epoch <= rounds; epoch++ {
		var (
			wg      sync.WaitGroup
			winners atomic.Int32
			mu      sync.Mutex
			holders = map[string]int{}
			winner  string
		)
		start := make(chan struct{})
		for i := range claimants {
			wg.Go(func() {
				who := fmt.Sprintf("box%02d", i)
				<-start
				d, err := c.Claim(context.Background(), epoch, who)
				if err != nil {
					t.Errorf("epoch %d, %s: %v", epoch, who, err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				holders[d.Holder]++
				if d.Won {
					winners.Add(1)
					winner = who
				}
			})
		}
		close(start)
		wg.Wait()
		if n := winners.Load(); n != 1 {
			t.Fatalf("epoch %d: %d winners", epoch, n)
		}
		if len(holders) != 1 || holders[winner] != claimants {
			t.Fatalf("epoch %d: winner %s, holders reported %v", epoch, winner, holders)
		}
		if g := ta.srv.Grant(psk); g.Epoch != epoch || g.Holder != winner {
			t.Fatalf("epoch %d: server holds %+v, winner %s", epoch, g, winner)
		}
	}
	if st := ta.srv.Stats(); st.Granted != rounds || st.RefusedTaken != rounds*(claimants-1) {
		t.Errorf("stats %+v", st)
	}
}

// TestArbiterHolderRetry: the holder asking again (its answer was lost) wins
// again; older epochs and other claimants lose, and learn the holder.
func TestArbiterHolderRetry(t *testing.T) {
	psk := arbTestKey(3)
	ta := startArbiter(t, stateCfg(t, psk))
	c := arbClient(t, ta.addr, psk, ArbiterClientOptions{})
	ctx := context.Background()
	for _, step := range []struct {
		epoch  uint64
		who    string
		won    bool
		holder string
	}{
		{0, "a", false, ""}, {5, "a", true, "a"}, {5, "a", true, "a"}, {5, "b", false, "a"},
		{4, "b", false, "a"}, {4, "a", false, "a"}, {6, "b", true, "b"}, {5, "a", false, "b"},
	} {
		d, err := c.Claim(ctx, step.epoch, step.who)
		if err != nil {
			t.Fatal(err)
		}
		if d.Won != step.won || d.Holder != step.holder {
			t.Fatalf("claim %d by %s: %+v, want won %v holder %q", step.epoch, step.who, d, step.won, step.holder)
		}
	}
	st := ta.srv.Stats()
	if st.Granted != 2 || st.Regranted != 1 || st.RefusedStale != 3 || st.RefusedTaken != 2 {
		t.Errorf("stats %+v", st)
	}
	if _, err := c.Claim(ctx, 9, ""); err == nil {
		t.Error("empty claimant accepted")
	}
	if _, err := c.Claim(ctx, 9, strings.Repeat("x", MaxClaimant+1)); err == nil {
		t.Error("long claimant accepted")
	}
}

// TestArbiterRestart: grants survive a restart from the state file.
func TestArbiterRestart(t *testing.T) {
	pskA, pskB := arbTestKey(4), arbTestKey(40)
	cfg := stateCfg(t, pskA, pskB)
	ta := startArbiter(t, cfg)
	if won, err := arbClient(t, ta.addr, pskA, ArbiterClientOptions{}).TestAndSet(3, "boxa"); !won || err != nil {
		t.Fatal(won, err)
	}
	if won, err := arbClient(t, ta.addr, pskB, ArbiterClientOptions{}).TestAndSet(9, "other"); !won || err != nil {
		t.Fatal(won, err)
	}
	if _, err := NewArbiterServer(cfg); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second arbiter on the same state file: %v", err)
	}
	ta.stop()
	cfg.Init = false // the state file exists now

	ta = startArbiter(t, cfg)
	c := arbClient(t, ta.addr, pskA, ArbiterClientOptions{})
	d, err := c.Claim(context.Background(), 3, "boxb")
	if err != nil || d.Won || d.Epoch != 3 || d.Holder != "boxa" {
		t.Fatalf("after restart, claim 3 by boxb: %+v %v", d, err)
	}
	if won, err := c.TestAndSet(3, "boxa"); !won || err != nil {
		t.Fatalf("after restart, holder retry: %v %v", won, err)
	}
	if g := ta.srv.Grant(pskB); g.Epoch != 9 || g.Holder != "other" {
		t.Fatalf("other pair after restart: %+v", g)
	}
	// A server that no longer has pair B's key keeps its grant on disk.
	ta.stop()
	cfgA := cfg
	cfgA.Keys = cfgA.Keys[:1]
	ta = startArbiter(t, cfgA)
	if won, err := arbClient(t, ta.addr, pskA, ArbiterClientOptions{}).TestAndSet(4, "boxb"); !won || err != nil {
		t.Fatal(won, err)
	}
	ta.stop()
	grants, _, err := LoadArbiterState(cfg.StatePath)
	if err != nil || len(grants) != 2 {
		t.Fatalf("state %+v %v", grants, err)
	}
}

func TestArbiterCorruptState(t *testing.T) {
	psk := arbTestKey(5)
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	if err := writeArbiterState(good, []ArbiterGrant{{Pair: ArbiterPairID(psk), Epoch: 7, Holder: "boxa"}}); err != nil {
		t.Fatal(err)
	}
	if g, ok, err := LoadArbiterState(good); err != nil || !ok || g[0].Epoch != 7 {
		t.Fatalf("good state: %v %v %v", g, ok, err)
	}
	if g, ok, err := LoadArbiterState(filepath.Join(dir, "missing")); err != nil || ok || g != nil {
		t.Fatalf("missing state: %v %v %v", g, ok, err)
	}
	raw, _ := os.ReadFile(good)
	for name, b := range map[string][]byte{
		"empty":     nil,
		"garbage":   []byte("\x00\x01 not json"),
		"truncated": raw[:len(raw)/2],
		"edited":    bytes.Replace(raw, []byte(`"epoch": 7`), []byte(`"epoch": 2`), 1),
		"format":    bytes.Replace(raw, []byte("v1"), []byte("v9"), 1),
		"unknown":   bytes.Replace(raw, []byte(`"format"`), []byte(`"x": 1, "format"`), 1),
		"trailing":  append(append([]byte(nil), raw...), []byte("{}")...),
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := NewArbiterServer(ArbiterServerConfig{Keys: [][KeySize]byte{psk}, StatePath: p})
		if !errors.Is(err, ErrArbiterState) || !strings.Contains(err.Error(), "refusing to start") {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Semantically wrong but checksummed states are refused too.
	for name, gs := range map[string][]ArbiterGrant{
		"epoch0":   {{Pair: ArbiterPairID(psk), Epoch: 0, Holder: "a"}},
		"dup":      {{Pair: ArbiterPairID(psk), Epoch: 1, Holder: "a"}, {Pair: ArbiterPairID(psk), Epoch: 2, Holder: "b"}},
		"badpair":  {{Pair: "xyz", Epoch: 1, Holder: "a"}},
		"noholder": {{Pair: ArbiterPairID(psk), Epoch: 1}},
	} {
		p := filepath.Join(dir, name)
		if err := writeArbiterState(p, gs); err != nil {
			t.Fatal(err)
		}
		if _, _, err := LoadArbiterState(p); !errors.Is(err, ErrArbiterState) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// rawRequest encodes a request with explicit keys (for forgeries).
func rawRequest(pair [8]byte, macKey [32]byte, epoch uint64, who string, when time.Time) ([]byte, [arbNonceLen]byte) {
	r := arbRequest{Pair: pair, Epoch: epoch, Claimant: who, Time: when.UnixNano()}
	for i := range r.Nonce {
		r.Nonce[i] = byte(rand.Uint32())
	}
	return appendArbRequest(nil, &r, &macKey), r.Nonce
}

// exchange sends b and returns the reply, or nil if none comes within wait.
func arbExchange(t *testing.T, addr string, b []byte, wait time.Duration) []byte {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 1024)
	n, err := conn.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

func TestArbiterForgedAndReplayed(t *testing.T) {
	psk := arbTestKey(6)
	ta := startArbiter(t, stateCfg(t, psk))
	keys, _ := deriveArbiterKeys(psk)
	now := time.Now()

	// A genuine request, then the same bytes again: the replay is dropped.
	req, nonce := rawRequest(keys.pair, keys.req, 4, "boxa", now)
	rep := arbExchange(t, ta.addr, req, time.Second)
	r, err := parseArbReply(rep, &keys.rep)
	if err != nil || r.Status != ArbiterGranted || r.Nonce != nonce {
		t.Fatalf("genuine request: %+v %v", r, err)
	}
	if rep := arbExchange(t, ta.addr, req, 100*time.Millisecond); rep != nil {
		t.Fatalf("replayed request answered: %x", rep)
	}
	// Forged: right pair id, wrong MAC key; and a genuine request with one bit flipped.
	forged, _ := rawRequest(keys.pair, arbTestKey(99), 5, "mallory", now)
	rep = arbExchange(t, ta.addr, forged, time.Second)
	if r, err := parseArbReply(rep, &keys.rep); err != nil || r.Status != ArbiterBadMAC || !r.Hint {
		t.Fatalf("forged request: %+v %v", r, err)
	}
	flip, _ := rawRequest(keys.pair, keys.req, 5, "boxb", now)
	flip[17] ^= 1
	arbExchange(t, ta.addr, flip, time.Second)
	// Unknown pair, malformed, stale.
	other, _ := deriveArbiterKeys(arbTestKey(77))
	unk, _ := rawRequest(other.pair, other.req, 5, "boxb", now)
	arbExchange(t, ta.addr, unk, time.Second)
	for _, b := range [][]byte{nil, []byte("hello"), bytes.Repeat([]byte{0xff}, 200), req[:len(req)-1], append(bytes.Clone(req), 0)} {
		arbExchange(t, ta.addr, b, 20*time.Millisecond)
	}
	bad := bytes.Clone(req)
	bad[6] = 0 // empty claimant
	arbExchange(t, ta.addr, bad, 20*time.Millisecond)
	stale, _ := rawRequest(keys.pair, keys.req, 3, "boxb", now)
	if r, err := parseArbReply(arbExchange(t, ta.addr, stale, time.Second), &keys.rep); err != nil || r.Status != ArbiterRefused || r.Holder != "boxa" || r.Current != 4 {
		t.Fatalf("stale request: %+v %v", r, err)
	}
	// A request from far in the past (outside the window) is not applied.
	old, _ := rawRequest(keys.pair, keys.req, 50, "boxb", now.Add(-time.Hour))
	if r, err := parseArbReply(arbExchange(t, ta.addr, old, time.Second), &keys.rep); err != nil || r.Status != ArbiterClock {
		t.Fatalf("old request: %+v %v", r, err)
	}

	st := ta.srv.Stats()
	want := ArbiterStats{Requests: 13, Granted: 1, RefusedStale: 1, Malformed: 6, UnknownPair: 1, BadMAC: 2, Replayed: 1, ClockSkew: 1}
	if st != want {
		t.Errorf("stats\n got %+v\nwant %+v", st, want)
	}
	if g := ta.srv.Grant(psk); g.Epoch != 4 || g.Holder != "boxa" {
		t.Errorf("state %+v", g)
	}

	// Clients with the wrong key get a clear error, not a decision.
	_, err = arbClient(t, ta.addr, arbTestKey(77), ArbiterClientOptions{Timeout: 200 * time.Millisecond}).TestAndSet(9, "boxa")
	if err == nil || !strings.Contains(err.Error(), "unknown pair") {
		t.Errorf("wrong key: %v", err)
	}
}

// TestArbiterReplayedReply: a recorded grant replayed to a client is not
// taken as an answer to a new claim.
func TestArbiterReplayedReply(t *testing.T) {
	psk := arbTestKey(7)
	keys, _ := deriveArbiterKeys(psk)
	// An old, authentic grant of epoch 8 to boxa, for another nonce.
	old := appendArbReply(nil, &arbReply{Status: ArbiterGranted, Pair: keys.pair, Requested: 8, Current: 8,
		Holder: "boxa", ServerTime: time.Now().UnixNano(), Nonce: [arbNonceLen]byte{1, 2, 3}}, &keys.rep)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var asked atomic.Int32
	go func() {
		buf := make([]byte, 1024)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			asked.Add(1)
			pc.WriteTo(old, addr)
			// and the same reply with the request's nonce but a forged tag
			req, _, _ := parseArbRequest(buf[:n])
			forged := appendArbReply(nil, &arbReply{Status: ArbiterGranted, Pair: keys.pair, Requested: 8, Current: 8,
				Holder: "boxa", Nonce: req.Nonce}, new([32]byte))
			pc.WriteTo(forged, addr)
		}
	}()
	// A second of retries (asks at ~0, 20, 60, 140, 300, 500 ms …): at least
	// three even on a loaded machine.
	c := arbClient(t, pc.LocalAddr().String(), psk, ArbiterClientOptions{Timeout: time.Second, Retry: 20 * time.Millisecond})
	won, err := c.TestAndSet(8, "boxa")
	if won || err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("replayed reply: won %v err %v", won, err)
	}
	if asked.Load() < 3 {
		t.Errorf("client asked only %d times", asked.Load())
	}
}

// TestArbiterClockSkew: a client whose clock is an hour off still gets its
// answer (it learns the arbiter's time from an authenticated reply).
func TestArbiterClockSkew(t *testing.T) {
	psk := arbTestKey(8)
	ta := startArbiter(t, stateCfg(t, psk))
	skewed := func() time.Time { return time.Now().Add(time.Hour) }
	c := arbClient(t, ta.addr, psk, ArbiterClientOptions{Now: skewed})
	for _, e := range []uint64{1, 2} {
		if won, err := c.TestAndSet(e, "boxa"); !won || err != nil {
			t.Fatalf("epoch %d: %v %v", e, won, err)
		}
	}
	if st := ta.srv.Stats(); st.ClockSkew != 1 || st.Granted != 2 {
		t.Errorf("stats %+v (the offset should be learned once)", st)
	}
}

// TestArbiterPersistFailure: a grant that cannot be saved is not answered
// and not made.
func TestArbiterPersistFailure(t *testing.T) {
	psk := arbTestKey(9)
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ta := startArbiter(t, ArbiterServerConfig{Keys: [][KeySize]byte{psk}, StatePath: filepath.Join(dir, "s"), Init: true})
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	c := arbClient(t, ta.addr, psk, ArbiterClientOptions{Timeout: 200 * time.Millisecond})
	if won, err := c.TestAndSet(1, "boxa"); won || err == nil {
		t.Fatalf("unsaved grant: %v %v", won, err)
	}
	if st := ta.srv.Stats(); st.PersistErrors == 0 || st.Granted != 0 {
		t.Errorf("stats %+v", st)
	}
	if g := ta.srv.Grant(psk); g.Epoch != 0 {
		t.Errorf("grant made: %+v", g)
	}
}

func TestArbiterUnreachable(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close() // nobody listens: ICMP port unreachable
	c := arbClient(t, addr, arbTestKey(10), ArbiterClientOptions{Timeout: 150 * time.Millisecond})
	start := time.Now()
	won, err := c.TestAndSet(1, "boxa")
	if won || err == nil || !strings.Contains(err.Error(), "no answer") {
		t.Fatalf("unreachable: %v %v", won, err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("took %v", el)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(30 * time.Millisecond); cancel() }()
	if _, err := c.Claim(ctx, 1, "boxa"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled claim: %v", err)
	}
}

func TestArbiterWireRoundTrip(t *testing.T) {
	k, _ := deriveArbiterKeys(arbTestKey(11))
	r := arbRequest{Op: arbOpTAS, Pair: k.pair, Epoch: 1 << 60, Time: -5, Nonce: [arbNonceLen]byte{9}, Claimant: "böx-a"}
	b := appendArbRequest(nil, &r, &k.req)
	got, _, err := parseArbRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	r.Tag = got.Tag
	if got != r {
		t.Fatalf("%+v != %+v", got, r)
	}
	rep := arbReply{Status: ArbiterRefused, Pair: k.pair, Requested: 3, Current: 4, ServerTime: 77, Nonce: r.Nonce, Holder: "x"}
	gr, err := parseArbReply(appendArbReply(nil, &rep, &k.rep), &k.rep)
	rep.Tag = gr.Tag
	if err != nil || gr != rep {
		t.Fatalf("%+v %v", gr, err)
	}
	// A request is not a reply, even under the same key material.
	if _, err := parseArbReply(b, &k.req); err == nil {
		t.Error("request parsed as reply")
	}
	if ArbiterPairID(arbTestKey(11)) == ArbiterPairID(arbTestKey(12)) {
		t.Error("pair ids collide")
	}
}

func FuzzArbiterRequest(f *testing.F) {
	psk := arbTestKey(12)
	keys, _ := deriveArbiterKeys(psk)
	now := time.Unix(1_700_000_000, 0)
	good, _ := rawRequest(keys.pair, keys.req, 3, "boxa", now)
	f.Add(good)
	f.Add(good[:arbReqFixed])
	f.Add([]byte("FTAQ"))
	f.Add([]byte{})
	srv, err := NewArbiterServer(ArbiterServerConfig{Keys: [][KeySize]byte{psk},
		StatePath: filepath.Join(f.TempDir(), "state"), Init: true, Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	defer srv.Close()
	f.Fuzz(func(t *testing.T, b []byte) {
		r, _, err := parseArbRequest(b)
		if err == nil {
			enc := appendArbRequest(nil, &r, &keys.req)
			if len(enc) != len(b) || !bytes.Equal(enc[:len(enc)-arbTagLen], b[:len(b)-arbTagLen]) {
				t.Fatalf("round trip: %x -> %x", b, enc)
			}
		}
		reply := srv.Handle(b, "fuzz")
		if reply == nil {
			return
		}
		if len(reply) > len(b)+arbTagLen+MaxClaimant {
			t.Fatalf("reply of %d bytes to %d", len(reply), len(b))
		}
		if rr, err := parseArbReply(reply, &keys.rep); err != nil || (rr.Hint && len(reply) >= len(b)) {
			t.Fatalf("bad reply %x: %v", reply, err)
		}
	})
}

func FuzzArbiterReply(f *testing.F) {
	k, _ := deriveArbiterKeys(arbTestKey(13))
	f.Add(appendArbReply(nil, &arbReply{Status: ArbiterGranted, Pair: k.pair, Holder: "a"}, &k.rep))
	f.Add(appendArbReply(nil, &arbReply{Status: ArbiterBadMAC, Pair: k.pair}, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseArbReply(b, &k.rep)
		if err != nil {
			return
		}
		key := &k.rep
		if r.Hint {
			key = nil
		}
		if enc := appendArbReply(nil, &r, key); !bytes.Equal(enc, b) {
			t.Fatalf("round trip: %x -> %x", b, enc)
		}
	})
}

// TestArbiterQuery: the current-epoch query is authenticated, answers the
// latest grant and its holder, and changes nothing; a query carrying an
// epoch is refused as malformed.
func TestArbiterQuery(t *testing.T) {
	psk := arbTestKey(12)
	srv, err := NewArbiterServer(ArbiterServerConfig{Keys: [][KeySize]byte{psk}, StatePath: filepath.Join(t.TempDir(), "state"), Init: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go srv.Serve(pc)
	c, err := NewArbiterClient(pc.LocalAddr().String(), psk, ArbiterClientOptions{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if d, err := c.Query(ctx, "boxa"); err != nil || d.Epoch != 0 || d.Holder != "" || d.Won {
		t.Fatalf("query before any grant: %+v %v", d, err)
	}
	if d, err := c.Claim(ctx, 5, "boxb"); err != nil || !d.Won {
		t.Fatalf("claim: %+v %v", d, err)
	}
	for range 2 {
		if d, err := c.Query(ctx, "boxa"); err != nil || d.Epoch != 5 || d.Holder != "boxb" || d.Won {
			t.Fatalf("query: %+v %v", d, err)
		}
	}
	if e, h, err := c.Current(); err != nil || e != 5 || h != "boxb" {
		t.Fatalf("Current: %d %q %v", e, h, err)
	}
	if g := srv.Grant(psk); g.Epoch != 5 || g.Holder != "boxb" {
		t.Fatalf("a query changed the state: %+v", g)
	}
	if st := srv.Stats(); st.Queries != 4 || st.Granted != 1 {
		t.Fatalf("stats %+v", st)
	}
	k, _ := deriveArbiterKeys(psk)
	bad := appendArbRequest(nil, &arbRequest{Op: arbOpQuery, Pair: k.pair, Epoch: 7, Time: time.Now().UnixNano(), Nonce: [arbNonceLen]byte{1}, Claimant: "x"}, &k.req)
	if _, _, err := parseArbRequest(bad); !errors.Is(err, ErrArbiterProtocol) {
		t.Fatalf("query with an epoch parsed: %v", err)
	}
	var m ftcore.MemArbiter
	if e, h, _ := m.Current(); e != 0 || h != "" {
		t.Fatal("fresh MemArbiter has a grant")
	}
	m.TestAndSet(3, "A")
	if d, err := (CoreArbiter{&m}).Query(ctx, "B"); err != nil || d.Epoch != 3 || d.Holder != "A" {
		t.Fatalf("CoreArbiter query: %+v %v", d, err)
	}
}

// TestArbiterNeverStartsBlank: a missing state file (a wrong path, a
// tmpfs, a reinstalled host) stops the arbiter unless --init says this is a
// new one; --init never resets an existing file; the file --init creates
// lets the next start go without it.
func TestArbiterNeverStartsBlank(t *testing.T) {
	psk := arbTestKey(12)
	p := filepath.Join(t.TempDir(), "arbiter.state")
	_, err := NewArbiterServer(ArbiterServerConfig{Keys: [][KeySize]byte{psk}, StatePath: p})
	if err == nil || !strings.Contains(err.Error(), "--init") || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing state file without --init: %v", err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused start created %s: %v", p, err)
	}
	ta := startArbiter(t, ArbiterServerConfig{Keys: [][KeySize]byte{psk}, StatePath: p, Init: true})
	if grants, ok, err := LoadArbiterState(p); err != nil || !ok || len(grants) != 0 {
		t.Fatalf("--init left %v %v %v", grants, ok, err)
	}
	if won, err := arbClient(t, ta.addr, psk, ArbiterClientOptions{}).TestAndSet(2, "boxa"); !won || err != nil {
		t.Fatal(won, err)
	}
	ta.stop()
	_, err = NewArbiterServer(ArbiterServerConfig{Keys: [][KeySize]byte{psk}, StatePath: p, Init: true})
	if err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("--init over an existing state file: %v", err)
	}
	ta = startArbiter(t, ArbiterServerConfig{Keys: [][KeySize]byte{psk}, StatePath: p})
	d, err := arbClient(t, ta.addr, psk, ArbiterClientOptions{}).Claim(context.Background(), 2, "boxb")
	if err != nil || d.Won || d.Holder != "boxa" {
		t.Fatalf("after a restart without --init: %+v %v", d, err)
	}
}
