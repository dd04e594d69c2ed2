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
		done <- ServeControl(ctx, l, &fixedController{want, nil}, nil)
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

type fixedController struct {
	s    *Status
	acks []time.Time
}

func (f *fixedController) Status(context.Context) (*Status, error) { return f.s, nil }
func (f *fixedController) Ack(context.Context) (*Status, error) {
	f.acks = append(f.acks, time.Now())
	return f.s, nil
}

// TestControlAck: "ack" reaches the box's Ack and answers with a status.
func TestControlAck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ftbox.sock")
	l, err := ListenControl(path)
	if err != nil {
		t.Fatal(err)
	}
	fc := &fixedController{s: goldenStatuses()["live"]}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ServeControl(ctx, l, fc, nil)
	qctx, qcancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer qcancel()
	if s, err := Acknowledge(qctx, path); err != nil || s.Role != "UNPROTECTED" || len(fc.acks) != 1 {
		t.Fatalf("ack: %v %v, %d acks", s, err, len(fc.acks))
	}
}

// TestControlSocketNeverDeletesAFile: box.control_socket naming a file that
// is not a socket (the pair key, say) is refused, and the file survives.
func TestControlSocketNeverDeletesAFile(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "pair.key")
	if err := GenerateKey(key); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(key)
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(key, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{key, filepath.Join(dir, "d"), filepath.Join(dir, "link")} {
		if l, err := ListenControl(p); err == nil || !strings.Contains(err.Error(), "not a socket") {
			if l != nil {
				l.Close()
			}
			t.Errorf("control socket on %s: %v", p, err)
		}
	}
	if after, err := os.ReadFile(key); err != nil || string(after) != string(before) {
		t.Fatalf("the key file was touched: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "link")); err != nil {
		t.Fatalf("the symlink was removed: %v", err)
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
