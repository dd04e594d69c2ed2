package sim

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"ftbox/ftcore/logwire"
)

// capture writes every link's frames to one pcapng file: one interface per
// link (named like "log0 A>B"), timestamps in simulated time from
// CaptureEpoch. A frame is written when it arrives (with a comment if the
// link duplicated, corrupted or delayed it, or if it is forged); a frame the
// link lost is written at the time it was sent, commented "lost". Logging
// frames get an Ethernet header (EtherType 0x88B5) so that the file is all
// Ethernet.
type capture struct {
	w *pcapgo.NgWriter
}

// CaptureEpoch is the wall-clock time simulated time 0 is written as.
var CaptureEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

var boxMAC = [2][6]byte{{0x02, 0xf7, 0, 0, 0, 0x0a}, {0x02, 0xf7, 0, 0, 0, 0x0b}}

func newCapture(out io.Writer) (*capture, error) {
	opts := pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "ftbox ftcore/sim"}}
	intf := func(l LinkID) pcapgo.NgInterface {
		return pcapgo.NgInterface{Name: l.String(), LinkType: layers.LinkTypeEthernet, TimestampResolution: 9}
	}
	w, err := pcapgo.NewNgWriterInterface(out, intf(0), opts)
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	for l := LinkID(1); l < NumLinks; l++ {
		if _, err := w.AddInterface(intf(l)); err != nil {
			return nil, fmt.Errorf("capture: %w", err)
		}
	}
	return &capture{w: w}, nil
}

func (c *capture) flush() error { return c.w.Flush() }

// packet records one frame (nil capture: nothing).
func (c *capture) packet(f frame) {
	if c == nil || f.link < 0 {
		return
	}
	data := f.data
	switch f.link {
	case LogAB, LogBA, PathAB, PathBA:
		src := 0
		if f.link == LogBA || f.link == PathBA {
			src = 1
		}
		h := make([]byte, 14, 14+len(data))
		copy(h[0:6], boxMAC[1-src][:])
		copy(h[6:12], boxMAC[src][:])
		binary.BigEndian.PutUint16(h[12:], logwire.EtherType)
		data = append(h, data...)
	}
	ci := gopacket.CaptureInfo{
		Timestamp:      CaptureEpoch.Add(f.at),
		CaptureLength:  len(data),
		Length:         len(data),
		InterfaceIndex: int(f.link),
	}
	var opts pcapgo.NgPacketOptions
	if f.note != "" {
		opts.Comments = []string{strings.TrimSpace(f.note)}
	}
	_ = c.w.WritePacketWithOptions(ci, data, opts) // a failed write shows in flush
}
