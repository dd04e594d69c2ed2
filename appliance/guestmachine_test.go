package appliance

import (
	"testing"

	"ftbox/ftcore/logwire"
	"ftbox/guestvm"
	"ftbox/tools/guests"
	"ftbox/tools/pkt"
)

// TestGuestMachineInject: entries become events; a frame the NIC has no
// room for is not an error (ftcore.Machine's contract — the backup drops it
// identically on replay); anything else is refused.
func TestGuestMachineInject(t *testing.T) {
	img, _ := guests.Image("netsvc")
	m, err := guestvm.New(guestvm.Config{MemSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Load(img); err != nil {
		t.Fatal(err)
	}
	g := GuestMachine{m}
	f := pkt.UDP(testClient, testGuest, 1, 7, []byte("x"))
	// The guest has not booted: no RX buffers, so the device queues and
	// then drops; every injection must still succeed.
	for i := 0; i < 300; i++ {
		if err := g.Inject(logwire.InputFrame{ICount: m.ICount(), Frame: f}); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if st := m.NetStats(); st.RxDropped == 0 {
		t.Fatalf("expected the NIC to drop some of 300 frames: %+v", st)
	}
	if err := g.Inject(logwire.ClockSync{ICount: m.ICount(), Time: 5}); err != nil {
		t.Fatal(err)
	}
	if err := g.Inject(logwire.Progress{ICount: m.ICount()}); err == nil {
		t.Fatal("a non-event entry was injected")
	}
	if err := g.Inject(logwire.InputFrame{ICount: m.ICount() + 1, Frame: f}); err == nil {
		t.Fatal("an entry for another instruction count was injected")
	}
}
