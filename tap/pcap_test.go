package tap_test

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"ftbox/tap"
	"ftbox/tap/porttest"
)

// A Captured port is itself a Port and passes the suite, both ends recorded.
func TestCaptureConformance(t *testing.T) {
	porttest.Run(t, func(t *testing.T) porttest.Pair {
		a, b := tap.Pipe(64)
		ca, err := tap.Capture(a, io.Discard, layers.LinkTypeEthernet)
		if err != nil {
			t.Fatal(err)
		}
		cb, err := tap.Capture(b, &lockedBuffer{}, layers.LinkTypeEthernet)
		if err != nil {
			t.Fatal(err)
		}
		return porttest.Pair{A: ca, B: cb}
	})
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

type captured struct {
	data []byte
	ci   gopacket.CaptureInfo
	dir  pcapgo.NgEpbFlag
}

func readCapture(t *testing.T, r io.Reader) (*pcapgo.NgReader, []captured) {
	t.Helper()
	nr, err := pcapgo.NewNgReader(r, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("NewNgReader: %v", err)
	}
	var out []captured
	for {
		data, ci, opts, err := nr.ReadPacketDataWithOptions()
		if errors.Is(err, io.EOF) {
			return nr, out
		}
		if err != nil {
			t.Fatalf("ReadPacketData after %d packets: %v", len(out), err)
		}
		c := captured{data: append([]byte(nil), data...), ci: ci}
		if opts.Flags != nil {
			c.dir = opts.Flags.Direction
		}
		out = append(out, c)
	}
}

func TestCaptureRecordsBothDirections(t *testing.T) {
	a, b := tap.Pipe(8)
	defer b.Close()
	var file bytes.Buffer
	clock := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	now := func() time.Time { clock = clock.Add(time.Millisecond); return clock }
	c, err := tap.Capture(a, &file, layers.LinkTypeEthernet, tap.WithClock(now), tap.WithInterfaceName("log0"))
	if err != nil {
		t.Fatal(err)
	}
	out1 := ethFrame([]byte{2, 0, 0, 0, 0, 2}, []byte{2, 0, 0, 0, 0, 1}, 0x88B5, "out one")
	in1 := ethFrame([]byte{2, 0, 0, 0, 0, 1}, []byte{2, 0, 0, 0, 0, 2}, 0x88B5, "in one")
	in2 := make([]byte, 1514)
	copy(in2, in1)
	in2[1513] = 0x77

	if err := c.WriteFrame(out1); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteFrame(in1); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteFrame(in2); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	if n, err := c.ReadFrame(buf); err != nil || !bytes.Equal(buf[:n], in1) {
		t.Fatalf("ReadFrame = %d, %v", n, err)
	}
	small := make([]byte, 100) // truncated: recorded as read
	if n, err := c.ReadFrame(small); !errors.Is(err, tap.ErrTruncated) || n != 100 {
		t.Fatalf("ReadFrame into 100 bytes = %d, %v", n, err)
	}
	if got := c.Frames(); got != 3 {
		t.Errorf("Frames() = %d, want 3", got)
	}
	c.Close()
	if err := c.WriteFrame(out1); !errors.Is(err, tap.ErrClosed) {
		t.Fatalf("WriteFrame after Close = %v", err)
	}
	if _, err := c.ReadFrame(buf); !errors.Is(err, tap.ErrClosed) {
		t.Fatalf("ReadFrame after Close = %v", err)
	}
	if err := c.CaptureErr(); err != nil {
		t.Fatalf("CaptureErr() = %v", err)
	}

	nr, pkts := readCapture(t, &file)
	if nr.NInterfaces() != 1 {
		t.Fatalf("%d interfaces, want 1", nr.NInterfaces())
	}
	intf, err := nr.Interface(0)
	if err != nil {
		t.Fatal(err)
	}
	if intf.Name != "log0" || intf.LinkType != layers.LinkTypeEthernet {
		t.Errorf("interface %q link type %v, want log0 Ethernet", intf.Name, intf.LinkType)
	}
	want := []struct {
		data []byte
		dir  pcapgo.NgEpbFlag
	}{
		{out1, pcapgo.NgEpbFlagDirectionOutbound},
		{in1, pcapgo.NgEpbFlagDirectionInbound},
		{in2[:100], pcapgo.NgEpbFlagDirectionInbound},
	}
	if len(pkts) != len(want) {
		t.Fatalf("%d packets in the capture, want %d (frames after Close are not recorded)", len(pkts), len(want))
	}
	ts := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	for i, w := range want {
		p := pkts[i]
		ts = ts.Add(time.Millisecond)
		if !bytes.Equal(p.data, w.data) {
			t.Errorf("packet %d: data %x, want %x", i, p.data, w.data)
		}
		if p.dir != w.dir {
			t.Errorf("packet %d: direction %v, want %v", i, p.dir, w.dir)
		}
		if !p.ci.Timestamp.Equal(ts) {
			t.Errorf("packet %d: timestamp %v, want %v", i, p.ci.Timestamp, ts)
		}
		if p.ci.CaptureLength != len(w.data) || p.ci.Length != len(w.data) {
			t.Errorf("packet %d: lengths %d/%d, want %d", i, p.ci.CaptureLength, p.ci.Length, len(w.data))
		}
	}
	// gopacket decodes what was captured.
	pkt := gopacket.NewPacket(pkts[0].data, layers.LayerTypeEthernet, gopacket.Default)
	eth, ok := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if !ok || eth.EthernetType != layers.EthernetType(0x88B5) {
		t.Errorf("decoded first packet: %v", pkt)
	}
}

func TestCaptureConcurrentRecordsAll(t *testing.T) {
	a, b := tap.Pipe(1024)
	defer b.Close()
	var file lockedBuffer
	c, err := tap.Capture(a, &file, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range n {
			if err := c.WriteFrame(make([]byte, 60+i%100)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for i := range n {
			if err := b.WriteFrame(make([]byte, 60+i%100)); err != nil {
				t.Error(err)
				return
			}
			if _, err := c.ReadFrame(buf); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	c.Close()
	_, pkts := readCapture(t, &file.b)
	var in, out int
	for _, p := range pkts {
		switch p.dir {
		case pcapgo.NgEpbFlagDirectionInbound:
			in++
		case pcapgo.NgEpbFlagDirectionOutbound:
			out++
		}
	}
	if in != n || out != n {
		t.Fatalf("capture holds %d inbound and %d outbound frames, want %d each", in, out, n)
	}
}

type failingWriter struct{ left int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) > f.left {
		return 0, errors.New("disk full")
	}
	f.left -= len(p)
	return len(p), nil
}

func TestCaptureWriteErrorDoesNotBreakPort(t *testing.T) {
	if _, err := tap.Capture(nil, &failingWriter{}, layers.LinkTypeEthernet); err == nil {
		t.Fatal("Capture on a writer that fails at the header succeeded")
	}
	a, b := tap.Pipe(8)
	defer b.Close()
	c, err := tap.Capture(a, &failingWriter{left: 4096}, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 2048)
	for i := range 10 {
		if err := c.WriteFrame(make([]byte, 1000)); err != nil {
			t.Fatalf("WriteFrame %d with a failing capture: %v", i, err)
		}
		if _, err := b.ReadFrame(buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.CaptureErr(); err == nil {
		t.Fatal("CaptureErr() = nil after the capture writer failed")
	}
	if f := c.Frames(); f == 0 || f >= 10 {
		t.Errorf("Frames() = %d, want some but not all of 10", f)
	}
}
