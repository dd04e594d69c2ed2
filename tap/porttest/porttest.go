// Package porttest is the conformance suite every tap.Port implementation
// passes. An implementation's test calls Run with a factory that returns two
// connected ends:
//
//	porttest.Run(t, func(t *testing.T) porttest.Pair {
//		a, b := tap.Pipe(64)
//		return porttest.Pair{A: a, B: b}
//	})
//
// The suite checks, in both directions: frames from 60 to MaxFrame bytes arrive
// intact and in order; the writer keeps ownership of the slice it wrote; a read
// buffer smaller than the frame yields ErrTruncated with the frame's prefix
// (and the rest of that frame is discarded, not delivered as another frame);
// Close unblocks a pending ReadFrame with ErrClosed; every call after Close
// returns ErrClosed; Close twice returns nil; and one reader and one writer
// per end run concurrently (run the suite with -race).
//
// The link between the two ends must be quiet apart from what the suite
// writes: a stray frame (an IPv6 router solicitation on a TAP, say) fails the
// ordering checks. Disable IPv6 in a test namespace before creating devices.
package porttest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"ftbox/tap"
)

// Pair is two connected Ports: what A writes B reads, and vice versa.
type Pair struct {
	A, B tap.Port

	// EtherType the suite puts in the frames it builds; 0 means 0x88B5 (the
	// logging link's), which ports bound to one EtherType must accept.
	EtherType uint16
	// MaxFrame is the largest frame (header included, no FCS) the link
	// carries; 0 means 1514 (a 1500-byte MTU).
	MaxFrame int
	// NoTruncation is set by implementations that cannot tell that a frame
	// was longer than the read buffer. The truncation check then accepts a nil
	// error but still requires the prefix and the discarding of the rest.
	NoTruncation bool
}

// Factory returns a fresh connected Pair for one subtest. It registers its own
// cleanup with t (the suite also closes both ends; Close twice must be fine).
type Factory func(t *testing.T) Pair

// Timeout bounds every wait for a frame. Exported so slow CI can raise it.
var Timeout = 5 * time.Second

// Run runs the conformance suite as subtests of t.
func Run(t *testing.T, newPair Factory) {
	t.Helper()
	t.Run("Sizes", func(t *testing.T) { testSizes(t, newPair) })
	t.Run("Burst", func(t *testing.T) { testBurst(t, newPair) })
	t.Run("WriterKeepsOwnership", func(t *testing.T) { testOwnership(t, newPair) })
	t.Run("Truncation", func(t *testing.T) { testTruncation(t, newPair) })
	t.Run("CloseUnblocksRead", func(t *testing.T) { testCloseUnblocks(t, newPair) })
	t.Run("AfterClose", func(t *testing.T) { testAfterClose(t, newPair) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newPair) })
}

const (
	minFrame  = 60 // the Ethernet minimum without FCS
	hdrLen    = 14
	markOff   = hdrLen     // direction marker
	seqOff    = hdrLen + 1 // sequence number, big endian uint32
	bodyOff   = hdrLen + 5 // pattern derived from (dir, seq)
	defEthTyp = 0x88B5
)

var (
	macA = []byte{0x02, 0xf7, 0xb0, 0x00, 0x00, 0x0a}
	macB = []byte{0x02, 0xf7, 0xb0, 0x00, 0x00, 0x0b}
)

func setup(t *testing.T, newPair Factory) Pair {
	t.Helper()
	p := newPair(t)
	if p.A == nil || p.B == nil {
		t.Fatal("factory returned a nil Port")
	}
	if p.EtherType == 0 {
		p.EtherType = defEthTyp
	}
	if p.MaxFrame == 0 {
		p.MaxFrame = 1514
	}
	if p.MaxFrame < minFrame {
		t.Fatalf("Pair.MaxFrame %d below the Ethernet minimum %d", p.MaxFrame, minFrame)
	}
	t.Cleanup(func() {
		p.A.Close()
		p.B.Close()
	})
	return p
}

// frame builds a frame of size bytes travelling in direction dir ('a' for
// A→B, 'b' for B→A) with sequence number seq; its content is a function of
// (dir, seq, size) so the reader can check it without shared state.
func (p Pair) frame(dir byte, seq uint32, size int) []byte {
	f := make([]byte, size)
	if dir == 'a' {
		copy(f[0:6], macB)
		copy(f[6:12], macA)
	} else {
		copy(f[0:6], macA)
		copy(f[6:12], macB)
	}
	binary.BigEndian.PutUint16(f[12:14], p.EtherType)
	f[markOff] = dir
	binary.BigEndian.PutUint32(f[seqOff:], seq)
	x := seq*2654435761 + uint32(size) + uint32(dir)
	for i := bodyOff; i < size; i++ {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		f[i] = byte(x)
	}
	return f
}

// check compares a received frame with the one expected, describing the
// first difference.
func check(got, want []byte) error {
	if len(got) != len(want) {
		if len(got) > seqOff+4 {
			return fmt.Errorf("got %d bytes (dir %q seq %d), want %d (dir %q seq %d)",
				len(got), got[markOff], binary.BigEndian.Uint32(got[seqOff:]),
				len(want), want[markOff], binary.BigEndian.Uint32(want[seqOff:]))
		}
		return fmt.Errorf("got %d bytes, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Errorf("byte %d of %d: got %#02x, want %#02x (dir %q seq %d)",
				i, len(got), got[i], want[i], want[markOff], binary.BigEndian.Uint32(want[seqOff:]))
		}
	}
	return nil
}

type readResult struct {
	n   int
	err error
}

// readTimeout reads one frame into buf, failing the test if none arrives in
// Timeout. On timeout it closes p so the pending read ends before the test
// returns.
func readTimeout(t *testing.T, p tap.Port, buf []byte) (int, error) {
	t.Helper()
	done := make(chan readResult, 1)
	go func() {
		n, err := p.ReadFrame(buf)
		done <- readResult{n, err}
	}()
	select {
	case r := <-done:
		return r.n, r.err
	case <-time.After(Timeout):
		p.Close()
		<-done
		t.Fatalf("no frame within %v", Timeout)
		return 0, nil
	}
}

// sizes returns the frame sizes tried: the minimum, the maximum, the
// boundaries around powers of two and a stride through the range.
func sizes(max int) []int {
	var s []int
	seen := map[int]bool{}
	add := func(n int) {
		if n >= minFrame && n <= max && !seen[n] {
			seen[n] = true
			s = append(s, n)
		}
	}
	add(minFrame)
	add(minFrame + 1)
	for _, n := range []int{63, 64, 65, 127, 128, 129, 255, 256, 511, 512, 1023, 1024, 1025} {
		add(n)
	}
	for n := minFrame; n <= max; n += 97 {
		add(n)
	}
	add(max - 1)
	add(max)
	return s
}

func testSizes(t *testing.T, newPair Factory) {
	p := setup(t, newPair)
	buf := make([]byte, p.MaxFrame+64)
	for _, dir := range []byte{'a', 'b'} {
		w, r := p.A, p.B
		if dir == 'b' {
			w, r = p.B, p.A
		}
		for i, size := range sizes(p.MaxFrame) {
			want := p.frame(dir, uint32(i), size)
			if err := w.WriteFrame(want); err != nil {
				t.Fatalf("%c: WriteFrame(%d bytes): %v", dir, size, err)
			}
			n, err := readTimeout(t, r, buf)
			if err != nil {
				t.Fatalf("%c: ReadFrame after writing %d bytes: %v", dir, size, err)
			}
			if err := check(buf[:n], want); err != nil {
				t.Fatalf("%c: frame of %d bytes: %v", dir, size, err)
			}
		}
	}
}

// testBurst writes a run of frames before reading any: they must all arrive,
// in order.
func testBurst(t *testing.T, newPair Factory) {
	p := setup(t, newPair)
	const burst = 32
	sz := sizes(p.MaxFrame)
	buf := make([]byte, p.MaxFrame+64)
	for _, dir := range []byte{'a', 'b'} {
		w, r := p.A, p.B
		if dir == 'b' {
			w, r = p.B, p.A
		}
		var want [][]byte
		for i := range burst {
			f := p.frame(dir, uint32(i), sz[i%len(sz)])
			want = append(want, f)
			if err := w.WriteFrame(f); err != nil {
				t.Fatalf("%c: WriteFrame %d: %v", dir, i, err)
			}
		}
		for i := range burst {
			n, err := readTimeout(t, r, buf)
			if err != nil {
				t.Fatalf("%c: ReadFrame %d: %v", dir, i, err)
			}
			if err := check(buf[:n], want[i]); err != nil {
				t.Fatalf("%c: frame %d of the burst: %v", dir, i, err)
			}
		}
	}
}

func testOwnership(t *testing.T, newPair Factory) {
	p := setup(t, newPair)
	buf := make([]byte, p.MaxFrame+64)
	want := p.frame('a', 7, 200)
	f := append([]byte(nil), want...)
	if err := p.A.WriteFrame(f); err != nil {
		t.Fatalf("WriteFrame: %v", err)
	}
	for i := range f { // the caller owns f again and reuses it
		f[i] = 0xA5
	}
	n, err := readTimeout(t, p.B, buf)
	if err != nil {
		t.Fatalf("ReadFrame: %v", err)
	}
	if err := check(buf[:n], want); err != nil {
		t.Fatalf("frame changed by the writer's later use of its slice: %v", err)
	}
	// And a frame read into buf is not changed by the next write.
	got := buf[:n]
	if err := p.A.WriteFrame(p.frame('a', 8, 100)); err != nil {
		t.Fatalf("WriteFrame: %v", err)
	}
	if err := check(got, want); err != nil {
		t.Fatalf("a read frame changed after a later write: %v", err)
	}
}

func testTruncation(t *testing.T, newPair Factory) {
	p := setup(t, newPair)
	size := min(1000, p.MaxFrame)
	for _, dir := range []byte{'a', 'b'} {
		w, r := p.A, p.B
		if dir == 'b' {
			w, r = p.B, p.A
		}
		long := p.frame(dir, 1, size)
		next := p.frame(dir, 2, 80)
		if err := w.WriteFrame(long); err != nil {
			t.Fatalf("%c: WriteFrame: %v", dir, err)
		}
		if err := w.WriteFrame(next); err != nil {
			t.Fatalf("%c: WriteFrame: %v", dir, err)
		}
		small := make([]byte, 100)
		n, err := readTimeout(t, r, small)
		switch {
		case errors.Is(err, tap.ErrTruncated):
		case err == nil && p.NoTruncation:
		case err == nil:
			t.Fatalf("%c: ReadFrame of a %d-byte frame into %d bytes: n=%d and no error, want ErrTruncated", dir, size, len(small), n)
		default:
			t.Fatalf("%c: ReadFrame into a small buffer: %v, want ErrTruncated", dir, err)
		}
		if n != len(small) {
			t.Fatalf("%c: truncated ReadFrame returned n=%d, want %d", dir, n, len(small))
		}
		if !bytes.Equal(small, long[:len(small)]) {
			t.Fatalf("%c: truncated frame is not the frame's prefix", dir)
		}
		buf := make([]byte, p.MaxFrame+64)
		n, err = readTimeout(t, r, buf)
		if err != nil {
			t.Fatalf("%c: ReadFrame after a truncated one: %v", dir, err)
		}
		if err := check(buf[:n], next); err != nil {
			t.Fatalf("%c: frame after the truncated one (the rest must be discarded): %v", dir, err)
		}
	}
}

func testCloseUnblocks(t *testing.T, newPair Factory) {
	p := setup(t, newPair)
	for _, side := range []struct {
		name string
		port tap.Port
	}{{"A", p.A}, {"B", p.B}} {
		done := make(chan readResult, 1)
		go func() {
			n, err := side.port.ReadFrame(make([]byte, 2048))
			done <- readResult{n, err}
		}()
		time.Sleep(50 * time.Millisecond) // let the read block
		select {
		case r := <-done:
			t.Fatalf("%s: ReadFrame returned (%d, %v) with nothing written", side.name, r.n, r.err)
		default:
		}
		start := time.Now()
		if err := side.port.Close(); err != nil {
			t.Fatalf("%s: Close: %v", side.name, err)
		}
		select {
		case r := <-done:
			if !errors.Is(r.err, tap.ErrClosed) {
				t.Fatalf("%s: pending ReadFrame after Close returned (%d, %v), want ErrClosed", side.name, r.n, r.err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("%s: Close took %v to unblock ReadFrame", side.name, d)
			}
		case <-time.After(Timeout):
			t.Fatalf("%s: ReadFrame still blocked %v after Close", side.name, Timeout)
		}
	}
}

func testAfterClose(t *testing.T, newPair Factory) {
	p := setup(t, newPair)
	// A frame waiting to be read must not be returned after Close either.
	if err := p.B.WriteFrame(p.frame('b', 1, 64)); err != nil {
		t.Fatalf("WriteFrame: %v", err)
	}
	time.Sleep(20 * time.Millisecond)
	if err := p.A.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n, err := p.A.ReadFrame(make([]byte, 2048)); !errors.Is(err, tap.ErrClosed) {
		t.Errorf("ReadFrame after Close = (%d, %v), want ErrClosed", n, err)
	}
	if err := p.A.WriteFrame(p.frame('a', 1, 64)); !errors.Is(err, tap.ErrClosed) {
		t.Errorf("WriteFrame after Close = %v, want ErrClosed", err)
	}
	if err := p.A.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if n, err := p.A.ReadFrame(make([]byte, 2048)); !errors.Is(err, tap.ErrClosed) {
		t.Errorf("ReadFrame after the second Close = (%d, %v), want ErrClosed", n, err)
	}
}

// testConcurrent runs both directions at once, one reader and one writer per
// end. A writer stays at most window frames ahead of its reader, so a link
// that drops under overload (Pipe, a socket buffer) is not overrun.
func testConcurrent(t *testing.T, newPair Factory) {
	p := setup(t, newPair)
	const (
		count  = 2000
		window = 16
	)
	sz := sizes(p.MaxFrame)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	stop := make(chan struct{})
	var stopOnce sync.Once
	fail := func(err error) {
		errs <- err
		stopOnce.Do(func() { close(stop) })
	}
	run := func(dir byte, w, r tap.Port) {
		credit := make(chan struct{}, window)
		for range window {
			credit <- struct{}{}
		}
		wg.Add(2)
		go func() { // writer
			defer wg.Done()
			for i := range count {
				select {
				case <-credit:
				case <-stop:
					return
				}
				if err := w.WriteFrame(p.frame(dir, uint32(i), sz[(i*7)%len(sz)])); err != nil {
					fail(fmt.Errorf("%c: WriteFrame %d: %w", dir, i, err))
					return
				}
			}
		}()
		go func() { // reader
			defer wg.Done()
			buf := make([]byte, p.MaxFrame+64)
			for i := range count {
				n, err := r.ReadFrame(buf)
				if err != nil {
					fail(fmt.Errorf("%c: ReadFrame %d of %d: %w", dir, i, count, err))
					return
				}
				if err := check(buf[:n], p.frame(dir, uint32(i), sz[(i*7)%len(sz)])); err != nil {
					fail(fmt.Errorf("%c: frame %d: %w", dir, i, err))
					return
				}
				credit <- struct{}{}
			}
		}()
	}
	run('a', p.A, p.B)
	run('b', p.B, p.A)

	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-stop:
	case <-time.After(6 * Timeout):
		t.Errorf("concurrent exchange of %d frames each way not done in %v (frames lost?)", count, 6*Timeout)
	}
	// Closing unblocks whatever is still pending.
	p.A.Close()
	p.B.Close()
	<-finished
	close(errs)
	for err := range errs {
		if !errors.Is(err, tap.ErrClosed) {
			t.Error(err)
		}
	}
}
