package appliance

import (
	"net"
	"testing"

	"ftbox/guestvm"
	"ftbox/tools/guests"
	"ftbox/tools/pkt"
)

// FuzzParseConfig: any bytes give a config that validates, or an error;
// never a panic, never an accepted config that breaks validation's promises.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(goodConfig))
	f.Add([]byte("[box]\nname = 1\n"))
	f.Add([]byte("[heartbeat]\ninterval = \"-5ms\"\n"))
	f.Add([]byte("[[box]]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			return
		}
		if c.Box.Name == "" || c.Heartbeat.Timeout.Duration < 3*c.Heartbeat.Interval.Duration {
			t.Fatalf("accepted an invalid config: %+v", c)
		}
		if _, err := ParseUnicastMAC(c.Guest.MAC); err != nil {
			t.Fatalf("accepted guest MAC %q", c.Guest.MAC)
		}
	})
}

// FuzzLANFrame: what the box reads from the LAN side of the TAP (any bytes)
// goes through its own parsing (the guest-IP learner) and into the guest
// machine as an input frame; neither may panic, and the machine stays
// usable.
func FuzzLANFrame(f *testing.F) {
	img, err := guests.Image("netsvc")
	if err != nil {
		f.Fatal(err)
	}
	mac := net.HardwareAddr(guestvm.DefaultMAC[:])
	client := pkt.Host{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, IP: net.IPv4(10, 77, 0, 100)}
	guest := pkt.Host{MAC: mac, IP: net.IPv4(10, 77, 0, 10)}
	f.Add(pkt.ARPRequest(client, guest.IP))
	f.Add(pkt.UDP(client, guest, 1, 7000, []byte("INCR a b")))
	f.Add(pkt.Ping(client, guest, 1, 1, []byte("x")))
	f.Add(RARPAnnounce(mac))
	m, err := guestvm.New(guestvm.Config{MemSize: 4 << 20})
	if err != nil {
		f.Fatal(err)
	}
	if err := m.Load(img); err != nil {
		f.Fatal(err)
	}
	for m.Run(50_000_000) != guestvm.StopIdle {
		m.TakeFrames()
	}
	boot := m.Save()
	f.Fuzz(func(t *testing.T, frame []byte) {
		learnGuestIP(frame, mac)
		if err := m.Restore(boot); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Inject(guestvm.Event{Kind: guestvm.EvFrame, ICount: m.ICount(), Data: frame}); err != nil {
			return // refused as malformed: fine, nothing applied
		}
		// The guest handles it and goes back to sleep.
		for i := 0; ; i++ {
			why := m.Run(m.ICount() + 5_000_000)
			m.TakeFrames()
			if why == guestvm.StopIdle {
				break
			}
			if why == guestvm.StopExit || i > 10 {
				t.Fatalf("guest did not return to idle after frame %x: %v", frame, why)
			}
		}
	})
}
