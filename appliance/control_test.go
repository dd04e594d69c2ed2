package appliance

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestControlSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "ftbox.sock")
	l, err := ListenControl(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || st.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket mode %v", st.Mode())
	}
	if _, err := ListenControl(path); err == nil || !strings.Contains(err.Error(), "another daemon") {
		t.Fatalf("second listener: %v", err)
	}
	want := goldenStatuses()["live"]
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ServeControl(ctx, l, func(context.Context) (*Status, error) { return want, nil }, nil)
	}()
	qctx, qcancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer qcancel()
	got, err := QueryStatus(qctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if got.SchemaVersion != 1 || got.Role != "UNPROTECTED" || got.LastFailover == nil || got.LastFailover.DetectionMS != 100.7 {
		t.Fatalf("got %+v", got)
	}
	// A malformed request gets an error answer, not a crash.
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("{nonsense\n"))
	buf := make([]byte, 512)
	n, _ := c.Read(buf)
	c.Close()
	if !strings.Contains(string(buf[:n]), "malformed request") {
		t.Fatalf("malformed request answered %q", buf[:n])
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
	if _, err := QueryStatus(qctx, path); err == nil {
		t.Fatal("query without a daemon succeeded")
	}
}

func TestStaleControlSocketReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ftbox.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // a dead daemon's socket file
	l2, err := ListenControl(path)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l2.Close()
}

func TestAnnounceFrames(t *testing.T) {
	mac := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	r := RARPAnnounce(mac)
	if len(r) != 60 || r[12] != 0x80 || r[13] != 0x35 || r[21] != 3 {
		t.Fatalf("rarp % x", r)
	}
	g := GARP(mac, net.IPv4(10, 77, 0, 10))
	if ip := learnGuestIP(g, mac); !ip.Equal(net.IPv4(10, 77, 0, 10)) {
		t.Fatalf("garp learned %v", ip)
	}
	if ip := bootargsIP("console=ttyS0 ip=10.1.2.3/24"); !ip.Equal(net.IPv4(10, 1, 2, 3)) {
		t.Fatalf("bootargs ip %v", ip)
	}
	for _, f := range [][]byte{nil, {1, 2, 3}, make([]byte, 14), append(append([]byte{}, g[:20]...), 0)} {
		learnGuestIP(f, mac) // never panics on short frames
	}
	var a announcer
	a.start(time.Second, AnnounceSchedule)
	if a.take(time.Second) != 1 || a.take(time.Second+49*time.Millisecond) != 0 ||
		a.take(time.Second+150*time.Millisecond) != 2 || a.next() != time.Second+250*time.Millisecond {
		t.Fatal("announce schedule")
	}
}
