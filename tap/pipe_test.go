package tap_test

import (
	"testing"

	"ftbox/tap"
	"ftbox/tap/porttest"
)

func TestPipeConformance(t *testing.T) {
	porttest.Run(t, func(t *testing.T) porttest.Pair {
		a, b := tap.Pipe(64)
		return porttest.Pair{A: a, B: b}
	})
}

func TestPipeDropsWhenFull(t *testing.T) {
	a, b := tap.Pipe(2)
	defer a.Close()
	defer b.Close()
	for i := range 5 {
		if err := a.WriteFrame([]byte{byte(i)}); err != nil {
			t.Fatalf("WriteFrame %d: %v", i, err)
		}
	}
	buf := make([]byte, 8)
	for i := range 2 {
		n, err := b.ReadFrame(buf)
		if err != nil || n != 1 || buf[0] != byte(i) {
			t.Fatalf("ReadFrame %d = (%d, %v, %x), want frame %d", i, n, err, buf[:n], i)
		}
	}
}

func TestPipeWriteToClosedPeer(t *testing.T) {
	a, b := tap.Pipe(1)
	defer a.Close()
	b.Close()
	for range 3 { // the frames are lost, like on a cut cable; no error, no block
		if err := a.WriteFrame([]byte{1}); err != nil {
			t.Fatalf("WriteFrame to a closed peer: %v", err)
		}
	}
}
