package ftcore_test

import (
	"bytes"
	"testing"
	"time"
)

// FuzzOnLogFrame feeds arbitrary frames to both sides of an established
// pair: nothing may panic, and the backup's replica must stay in step with
// the primary (no forged input applied).
func FuzzOnLogFrame(f *testing.F) {
	t := &testing.T{}
	h := newManual(t)
	h.handshake(t)
	h.p.OnLANFrame(h.now, []byte("seed"))
	h.stepP(t)
	genuine := map[string]bool{}
	for _, fr := range h.toB {
		genuine[string(fr)] = true // the pairs are deterministic: these frames are authentic in every run
		f.Add(append([]byte(nil), fr...))
	}
	f.Add([]byte{0x46, 0x54, 1, 0, 1, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		h := newManual(t)
		h.handshake(t)
		orig := bytes.Clone(data)
		_ = h.b.OnLogFrame(h.now, data)
		if !bytes.Equal(orig, data) {
			t.Fatal("OnLogFrame modified the caller's buffer")
		}
		_ = h.p.OnLogFrame(h.now, data)
		h.now += time.Millisecond
		_ = h.b.Step(h.now)
		_ = h.p.Step(h.now)
		if st := h.b.Status(); st.LogDelivered != 0 && !genuine[string(data)] {
			t.Fatalf("backup delivered %d entries from a frame no key holder made", st.LogDelivered)
		}
	})
}
