package appliance

// `ftbox dump`: a capture of the logging link, decoded.
//
// Every frame gets a line (number, time since the first frame, MACs,
// EtherType, length) and, for frames of the logging link's EtherType, the
// logwire header. Hello frames are in the clear, so their contents are shown
// always (their HMAC is checked only with the key). Data frames are
// encrypted with per-session keys; given the pair's key file, the dump
// derives each session from the two hellos of its handshake when the
// capture contains them (logwire.Endpoint.NewSession, playing each side in
// turn) and prints the decrypted entries, reassembling fragments. Nothing a
// capture holds can make the dump fail: a frame that does not parse,
// authenticate or decrypt is shown as such.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"ftbox/ftcore/logwire"
)

// DumpOptions tune Dump.
type DumpOptions struct {
	// PSK, if set, authenticates hellos and decrypts the data frames of
	// sessions whose handshake is in the capture.
	PSK *[KeySize]byte
}

// DumpStats counts what Dump saw.
type DumpStats struct {
	Frames      int // records in the capture
	Log         int // frames of EtherType 0x88B5
	Hellos      int // of which hello frames
	Decrypted   int // data frames opened
	Encrypted   int // data frames left encrypted (no key, or no handshake in the capture)
	Rejected    int // hellos or data frames that failed to authenticate, decrypt or validate
	Undecodable int // log frames whose header does not parse, and frames of unknown link types
	Other       int // frames of other EtherTypes
}

// Dump reads a pcap or pcapng capture from r and writes one readable block
// per frame to w. It returns an error only if the capture itself cannot be
// read (not a capture, an I/O error); a capture cut off mid-record is
// reported in the output and ends the dump without error.
func Dump(w io.Writer, r io.Reader, opts DumpOptions) (st DumpStats, err error) {
	d := &dumper{w: bufio.NewWriter(w), sessions: map[uint32]*dumpSession{}}
	defer func() {
		if ferr := d.w.Flush(); ferr != nil && err == nil {
			err = fmt.Errorf("dump: write: %w", ferr)
		}
	}()
	if opts.PSK != nil {
		ep, err := logwire.NewEndpoint(*opts.PSK, logwire.Options{MTU: logwire.MaxMTU})
		if err != nil {
			return d.st, fmt.Errorf("dump: %w", err)
		}
		d.ep = ep
	}
	src, format, err := openCapture(r)
	if err != nil {
		return d.st, err
	}
	fmt.Fprintf(d.w, "capture: %s", format)
	if d.ep == nil {
		fmt.Fprint(d.w, " (no key: data frames stay encrypted; give --key to decrypt)")
	}
	fmt.Fprintln(d.w)
	for {
		data, ci, lt, dir, err := src.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				fmt.Fprintf(d.w, "capture ends in the middle of record %d (cut off while being written?)\n", d.st.Frames+1)
				break
			}
			d.summary()
			return d.st, fmt.Errorf("dump: read record %d: %w", d.st.Frames+1, err)
		}
		d.frame(data, ci, lt, dir)
	}
	d.summary()
	return d.st, nil
}

// captureSource reads records of either capture format.
type captureSource interface {
	next() (data []byte, ci gopacket.CaptureInfo, lt layers.LinkType, dir string, err error)
}

type pcapSource struct{ r *pcapgo.Reader }

func (s pcapSource) next() ([]byte, gopacket.CaptureInfo, layers.LinkType, string, error) {
	data, ci, err := s.r.ReadPacketData()
	return data, ci, s.r.LinkType(), "", err
}

type ngSource struct{ r *pcapgo.NgReader }

func (s ngSource) next() ([]byte, gopacket.CaptureInfo, layers.LinkType, string, error) {
	data, ci, opts, err := s.r.ReadPacketDataWithOptions()
	lt := s.r.LinkType()
	if len(ci.AncillaryData) > 0 {
		if l, ok := ci.AncillaryData[0].(layers.LinkType); ok {
			lt = l
		}
	}
	dir := ""
	if opts.Flags != nil {
		switch opts.Flags.Direction {
		case pcapgo.NgEpbFlagDirectionInbound:
			dir = "in"
		case pcapgo.NgEpbFlagDirectionOutbound:
			dir = "out"
		}
	}
	return data, ci, lt, dir, err
}

func openCapture(r io.Reader) (captureSource, string, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, "", fmt.Errorf("dump: read capture header: %w", err)
	}
	switch binary.LittleEndian.Uint32(magic) {
	case 0x0A0D0D0A:
		nr, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err != nil {
			return nil, "", fmt.Errorf("dump: pcapng: %w", err)
		}
		return ngSource{nr}, "pcapng", nil
	case 0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1:
		pr, err := pcapgo.NewReader(br)
		if err != nil {
			return nil, "", fmt.Errorf("dump: pcap: %w", err)
		}
		return pcapSource{pr}, "pcap", nil
	}
	return nil, "", fmt.Errorf("dump: not a pcap or pcapng file (starts % x)", magic)
}

// dumpSession is one handshake's pair of sessions: rx[r] opens frames sent
// by role r.
type dumpSession struct {
	rx [3]*logwire.Session
}

type capturedHello struct {
	n     int // frame number
	hello logwire.Hello
}

type dumper struct {
	w        *bufio.Writer
	ep       *logwire.Endpoint
	st       DumpStats
	first    time.Time
	hellos   []capturedHello
	sessions map[uint32]*dumpSession
}

func (d *dumper) summary() {
	s := d.st
	fmt.Fprintf(d.w, "%d frames: %d on the logging link (%d hello, %d decrypted, %d encrypted, %d rejected, %d undecodable), %d other\n",
		s.Frames, s.Log, s.Hellos, s.Decrypted, s.Encrypted, s.Rejected, s.Undecodable, s.Other)
}

// frame prints one capture record.
func (d *dumper) frame(data []byte, ci gopacket.CaptureInfo, lt layers.LinkType, dir string) {
	d.st.Frames++
	n := d.st.Frames
	if n == 1 {
		d.first = ci.Timestamp
		fmt.Fprintf(d.w, "first frame at %s\n", ci.Timestamp.UTC().Format("2006-01-02 15:04:05.000000 MST"))
	}
	rel := ci.Timestamp.Sub(d.first)
	fmt.Fprintf(d.w, "#%d %+.6f", n, rel.Seconds())
	if dir != "" {
		fmt.Fprintf(d.w, " %s", dir)
	}
	src, dst, etype, payload, err := linkHeader(data, lt)
	if err != nil {
		d.st.Undecodable++
		fmt.Fprintf(d.w, " %d bytes: %v\n", len(data), err)
		return
	}
	if dst != nil {
		fmt.Fprintf(d.w, " %s > %s", src, dst)
	} else {
		fmt.Fprintf(d.w, " from %s", src)
	}
	fmt.Fprintf(d.w, " type %#04x", uint16(etype))
	if etype != logwire.EtherType {
		d.st.Other++
		fmt.Fprintf(d.w, " (not the logging link) %d bytes", len(data))
		if lt == layers.LinkTypeEthernet {
			fmt.Fprintf(d.w, ": %s", summarizeFrame(data, false))
		}
		fmt.Fprintln(d.w)
		return
	}
	d.st.Log++
	fmt.Fprintf(d.w, " %d bytes", len(payload))
	truncated := ci.CaptureLength < ci.Length
	if truncated {
		fmt.Fprintf(d.w, " (capture kept %d of %d bytes)", ci.CaptureLength, ci.Length)
	}
	fmt.Fprintln(d.w)
	hdr, err := logwire.ParseHeader(payload)
	if err != nil {
		d.st.Undecodable++
		fmt.Fprintf(d.w, "   undecodable: %v\n", err)
		return
	}
	if hdr.IsHello() {
		d.hello(n, hdr, payload)
		return
	}
	fmt.Fprintf(d.w, "   data v%d from %s sess %08x epoch %d seq %d ack %d base %d entries %d\n",
		hdr.Version, hdr.Role, hdr.Session, hdr.Epoch, hdr.Seq, hdr.Ack, hdr.Base, hdr.Count)
	ds := d.sessions[hdr.Session]
	switch {
	case truncated:
		d.st.Encrypted++
		fmt.Fprintln(d.w, "     (encrypted: frame cut short by the capture's snap length)")
		return
	case d.ep == nil:
		d.st.Encrypted++
		fmt.Fprintf(d.w, "     (encrypted, %d bytes)\n", max(0, len(payload)-logwire.Overhead))
		return
	case ds == nil:
		d.st.Encrypted++
		fmt.Fprintf(d.w, "     (encrypted: the handshake of session %08x is not in this capture)\n", hdr.Session)
		return
	}
	s := ds.rx[hdr.Role]
	f, v, err := s.Open(bytes.Clone(payload))
	if err != nil {
		d.st.Rejected++
		fmt.Fprintf(d.w, "     REJECTED (%v): %v\n", v, err)
		return
	}
	d.st.Decrypted++
	for e := range f.Entries.All() {
		fmt.Fprintf(d.w, "     %s\n", describeEntry(e))
		if fr, ok := e.(logwire.Fragment); ok {
			whole, err := s.Reassemble(f.Seq, fr)
			switch {
			case err != nil:
				fmt.Fprintf(d.w, "       reassembly failed: %v\n", err)
			case whole != nil:
				fmt.Fprintf(d.w, "       = %s\n", describeEntry(whole))
			}
		}
	}
}

// hello prints a hello frame and derives sessions from handshakes.
func (d *dumper) hello(n int, hdr logwire.Header, payload []byte) {
	d.st.Hellos++
	fmt.Fprintf(d.w, "   hello v%d from %s epoch %d", hdr.Version, hdr.Role, hdr.Epoch)
	var h logwire.Hello
	if d.ep != nil {
		var v logwire.Verdict
		var err error
		h, v, err = d.ep.OpenHello(bytes.Clone(payload), 0)
		if err != nil {
			d.st.Rejected++
			fmt.Fprintf(d.w, ": REJECTED (%v): %v\n", v, err)
			return
		}
		fmt.Fprintln(d.w, " (HMAC ok)")
	} else {
		var err error
		if h, err = helloContents(payload); err != nil {
			d.st.Undecodable++
			fmt.Fprintf(d.w, ": undecodable: %v\n", err)
			return
		}
		fmt.Fprintln(d.w, " (HMAC not checked: no key)")
	}
	fmt.Fprintf(d.w, "     nonce %s", shortHex(h.Nonce[:]))
	if h.Echo == ([32]byte{}) {
		fmt.Fprint(d.w, ", initiating")
	} else {
		fmt.Fprintf(d.w, ", echo %s", shortHex(h.Echo[:]))
	}
	// Find the hello this one answers (or that answered it).
	var peer *capturedHello
	for i := len(d.hellos) - 1; i >= 0; i-- {
		p := &d.hellos[i]
		if p.hello.Role == h.Role.Peer() && p.hello.Epoch == h.Epoch && (h.Echo == p.hello.Nonce || p.hello.Echo == h.Nonce) {
			peer = p
			break
		}
	}
	d.hellos = append(d.hellos, capturedHello{n: n, hello: h})
	if peer == nil {
		fmt.Fprintln(d.w)
		return
	}
	if h.Echo == peer.hello.Nonce {
		fmt.Fprintf(d.w, ", answers #%d", peer.n)
	} else {
		fmt.Fprintf(d.w, ", answered by #%d", peer.n)
	}
	if d.ep == nil {
		fmt.Fprintln(d.w)
		return
	}
	// Play each side: the session whose local role is R opens frames sent by R's peer.
	var ds dumpSession
	var id uint32
	for _, local := range []logwire.Hello{h, peer.hello} {
		other := peer.hello
		if local == peer.hello {
			other = h
		}
		s, err := d.ep.NewSession(local, other)
		if err != nil {
			fmt.Fprintf(d.w, "; no session: %v\n", err)
			return
		}
		ds.rx[local.Role.Peer()] = s
		id = s.ID()
	}
	d.sessions[id] = &ds
	fmt.Fprintf(d.w, " -> session %08x\n", id)
}

// helloContents decodes a hello frame's entry without authenticating it.
func helloContents(frame []byte) (logwire.Hello, error) {
	want := logwire.HeaderLen + logwire.EncodedLen(logwire.Hello{}) + logwire.TagLen
	if len(frame) != want {
		return logwire.Hello{}, fmt.Errorf("hello frame of %d bytes, want %d", len(frame), want)
	}
	es, err := logwire.ParseEntries(frame[logwire.HeaderLen : len(frame)-logwire.TagLen])
	if err != nil {
		return logwire.Hello{}, err
	}
	for e := range es.All() {
		if h, ok := e.(logwire.Hello); ok {
			return h, nil
		}
		return logwire.Hello{}, fmt.Errorf("hello frame carries %v", e.Type())
	}
	return logwire.Hello{}, errors.New("hello frame without entries")
}

// linkHeader strips the link-layer header.
func linkHeader(data []byte, lt layers.LinkType) (src, dst net.HardwareAddr, et layers.EthernetType, payload []byte, err error) {
	switch lt {
	case layers.LinkTypeEthernet:
		var eth layers.Ethernet
		if err := eth.DecodeFromBytes(data, gopacket.NilDecodeFeedback); err != nil {
			return nil, nil, 0, nil, fmt.Errorf("bad Ethernet header: %v", err)
		}
		et, payload = eth.EthernetType, eth.Payload
		for et == layers.EthernetTypeDot1Q || et == layers.EthernetTypeQinQ {
			var q layers.Dot1Q
			if err := q.DecodeFromBytes(payload, gopacket.NilDecodeFeedback); err != nil {
				return nil, nil, 0, nil, fmt.Errorf("bad 802.1Q header: %v", err)
			}
			et, payload = q.Type, q.Payload
		}
		return eth.SrcMAC, eth.DstMAC, et, payload, nil
	case layers.LinkTypeLinuxSLL:
		var sll layers.LinuxSLL
		if err := sll.DecodeFromBytes(data, gopacket.NilDecodeFeedback); err != nil {
			return nil, nil, 0, nil, fmt.Errorf("bad Linux cooked header: %v", err)
		}
		return sll.Addr, nil, sll.EthernetType, sll.Payload, nil
	case layers.LinkTypeLinuxSLL2:
		var sll layers.LinuxSLL2
		if err := sll.DecodeFromBytes(data, gopacket.NilDecodeFeedback); err != nil {
			return nil, nil, 0, nil, fmt.Errorf("bad Linux cooked v2 header: %v", err)
		}
		return sll.Addr, nil, sll.ProtocolType, sll.Payload, nil
	}
	return nil, nil, 0, nil, fmt.Errorf("link type %v not supported (capture the logging link's interface itself)", lt)
}

func shortHex(b []byte) string {
	if len(b) <= 8 {
		return hex.EncodeToString(b)
	}
	return hex.EncodeToString(b[:8]) + "…"
}

// describeEntry is a one-line description of a log entry.
func describeEntry(e logwire.Entry) string {
	switch e := e.(type) {
	case logwire.InputFrame:
		return fmt.Sprintf("input_frame icount %d, %d bytes: %s", e.ICount, len(e.Frame), summarizeFrame(e.Frame, true))
	case logwire.ClockSync:
		return fmt.Sprintf("clock_sync icount %d time %d rate %d/%d", e.ICount, e.Time, e.RateNum, e.RateDen)
	case logwire.ConsoleInput:
		s := e.Data
		more := ""
		if len(s) > 48 {
			s, more = s[:48], "…"
		}
		return fmt.Sprintf("console_input icount %d, %d bytes: %q%s", e.ICount, len(e.Data), s, more)
	case logwire.Progress:
		return fmt.Sprintf("progress icount %d", e.ICount)
	case logwire.ReleasedOutput:
		return fmt.Sprintf("released_output watermark %d", e.Watermark)
	case logwire.Digest:
		return fmt.Sprintf("digest icount %d sum %s", e.ICount, shortHex(e.Sum[:]))
	case logwire.Ack:
		return fmt.Sprintf("ack seq %d icount %d", e.Seq, e.ICount)
	case logwire.Heartbeat:
		return fmt.Sprintf("heartbeat time %d icount %d", e.Time, e.ICount)
	case logwire.DivergenceAlarm:
		return fmt.Sprintf("DIVERGENCE icount %d local %s remote %s", e.ICount, shortHex(e.Local[:]), shortHex(e.Remote[:]))
	case logwire.Fragment:
		return fmt.Sprintf("fragment id %d bytes [%d,%d) of %d", e.ID, e.Offset, int(e.Offset)+len(e.Piece), e.Total)
	case logwire.Hello:
		return fmt.Sprintf("hello %s epoch %d", e.Role, e.Epoch)
	case logwire.Snapshot:
		return fmt.Sprintf("snapshot icount %d outputs %d bytes [%d,%d) of %d sum %s", e.ICount, e.Outputs, e.Offset, e.Offset+uint64(len(e.Data)), e.Total, shortHex(e.Sum[:]))
	case logwire.InSync:
		return fmt.Sprintf("in_sync icount %d", e.ICount)
	}
	return fmt.Sprintf("%v", e.Type())
}

// summarizeFrame is a one-line summary of an Ethernet frame (a guest's
// input, or a stray frame on the link), tcpdump-like.
func summarizeFrame(b []byte, withMACs bool) string {
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.DecodeOptions{Lazy: false, NoCopy: true})
	var sb strings.Builder
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if eth == nil {
		return fmt.Sprintf("not an Ethernet frame (%d bytes)", len(b))
	}
	if withMACs {
		fmt.Fprintf(&sb, "%s > %s ", eth.SrcMAC, eth.DstMAC)
	}
	n := sb.Len()
	if arp, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP); ok {
		switch arp.Operation {
		case layers.ARPRequest:
			fmt.Fprintf(&sb, "ARP who-has %s tell %s", ipString(arp.DstProtAddress), ipString(arp.SourceProtAddress))
		case layers.ARPReply:
			fmt.Fprintf(&sb, "ARP reply %s is-at %s", ipString(arp.SourceProtAddress), net.HardwareAddr(arp.SourceHwAddress))
		default:
			fmt.Fprintf(&sb, "ARP op %d", arp.Operation)
		}
	}
	if v4, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		fmt.Fprintf(&sb, "IPv4 %s > %s", v4.SrcIP, v4.DstIP)
		if v4.Flags&layers.IPv4MoreFragments != 0 || v4.FragOffset != 0 {
			fmt.Fprintf(&sb, " fragment id %d off %d", v4.Id, int(v4.FragOffset)*8)
		}
	}
	if v6, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
		fmt.Fprintf(&sb, "IPv6 %s > %s", v6.SrcIP, v6.DstIP)
	}
	if t, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP); ok {
		fmt.Fprintf(&sb, " TCP %d > %d [%s] seq %d ack %d len %d", t.SrcPort, t.DstPort, tcpFlags(t), t.Seq, t.Ack, len(t.Payload))
	}
	if u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
		fmt.Fprintf(&sb, " UDP %d > %d len %d", u.SrcPort, u.DstPort, len(u.Payload))
	}
	if ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
		fmt.Fprintf(&sb, " ICMP %s", ic.TypeCode)
		if t := ic.TypeCode.Type(); t == layers.ICMPv4TypeEchoRequest || t == layers.ICMPv4TypeEchoReply {
			fmt.Fprintf(&sb, " id %d seq %d", ic.Id, ic.Seq)
		}
	}
	if ic, ok := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6); ok {
		fmt.Fprintf(&sb, " ICMPv6 %s", ic.TypeCode)
	}
	if sb.Len() == n {
		fmt.Fprintf(&sb, "type %#04x", uint16(eth.EthernetType))
	}
	if el := p.ErrorLayer(); el != nil {
		fmt.Fprintf(&sb, " (undecodable %v)", el.LayerType())
	}
	return sb.String()
}

func ipString(b []byte) string { return net.IP(b).String() }

func tcpFlags(t *layers.TCP) string {
	var s []byte
	for _, f := range []struct {
		on bool
		c  byte
	}{{t.SYN, 'S'}, {t.FIN, 'F'}, {t.RST, 'R'}, {t.PSH, 'P'}, {t.ACK, '.'}, {t.URG, 'U'}} {
		if f.on {
			s = append(s, f.c)
		}
	}
	if len(s) == 0 {
		return "none"
	}
	return string(s)
}
