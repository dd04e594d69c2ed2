package tap

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// CaptureOption adjusts Capture.
type CaptureOption func(*captureConfig)

type captureConfig struct {
	now  func() time.Time
	name string
}

// WithClock stamps captured frames with now() instead of the wall clock: the
// deterministic simulation passes its simulated clock.
func WithClock(now func() time.Time) CaptureOption {
	return func(c *captureConfig) { c.now = now }
}

// WithInterfaceName names the capture's interface in the pcapng file
// (default "port").
func WithInterfaceName(name string) CaptureOption {
	return func(c *captureConfig) { c.name = name }
}

// Captured is a Port that records every frame read from or written to the
// Port it wraps in a pcapng stream. Each frame is one enhanced packet block
// with its direction in the epb_flags option: inbound for frames ReadFrame
// returned, outbound for frames WriteFrame accepted. A truncated read is
// recorded as what was read.
//
// Recording never fails the port's operations: the first error writing the
// capture is kept (CaptureErr) and recording stops. Each frame is flushed to
// w as it is recorded, so the stream is complete up to the last frame even if
// the process dies. Close closes the wrapped Port, not w.
type Captured struct {
	p   Port
	now func() time.Time

	mu     sync.Mutex // serializes the reader's and writer's records
	w      *pcapgo.NgWriter
	err    error
	frames uint64
}

// Capture wraps p so that every frame it carries is written to w as pcapng
// with the given link type (layers.LinkTypeEthernet for every Port in this
// package). It writes the section and interface headers at once.
func Capture(p Port, w io.Writer, linkType layers.LinkType, opts ...CaptureOption) (*Captured, error) {
	cfg := captureConfig{now: time.Now, name: "port"}
	for _, o := range opts {
		o(&cfg)
	}
	intf := pcapgo.DefaultNgInterface
	intf.Name = cfg.name
	intf.LinkType = linkType
	intf.SnapLength = 0 // unlimited
	wopts := pcapgo.DefaultNgWriterOptions
	wopts.SectionInfo.Application = "ftbox"
	nw, err := pcapgo.NewNgWriterInterface(w, intf, wopts)
	if err != nil {
		return nil, fmt.Errorf("capture: write pcapng header: %w", err)
	}
	if err := nw.Flush(); err != nil {
		return nil, fmt.Errorf("capture: write pcapng header: %w", err)
	}
	return &Captured{p: p, now: cfg.now, w: nw}, nil
}

func (c *Captured) record(f []byte, dir pcapgo.NgEpbFlag) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	ci := gopacket.CaptureInfo{
		Timestamp:     c.now(),
		CaptureLength: len(f),
		Length:        len(f),
	}
	opts := pcapgo.NgPacketOptions{Flags: &pcapgo.NgEpbFlags{Direction: dir}}
	err := c.w.WritePacketWithOptions(ci, f, opts)
	if err == nil {
		err = c.w.Flush()
	}
	if err != nil {
		c.err = fmt.Errorf("capture: record frame %d: %w", c.frames+1, err)
		return
	}
	c.frames++
}

// ReadFrame implements Port.
func (c *Captured) ReadFrame(buf []byte) (int, error) {
	n, err := c.p.ReadFrame(buf)
	if err == nil || errors.Is(err, ErrTruncated) {
		c.record(buf[:n], pcapgo.NgEpbFlagDirectionInbound)
	}
	return n, err
}

// WriteFrame implements Port. Frames the wrapped port refused are not
// recorded.
func (c *Captured) WriteFrame(f []byte) error {
	if err := c.p.WriteFrame(f); err != nil {
		return err
	}
	c.record(f, pcapgo.NgEpbFlagDirectionOutbound)
	return nil
}

// Close implements Port: it closes the wrapped Port.
func (c *Captured) Close() error { return c.p.Close() }

// Frames is how many frames have been recorded.
func (c *Captured) Frames() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.frames
}

// CaptureErr is the first error writing the capture, or nil.
func (c *Captured) CaptureErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
