// Package verify checks tcpdump captures taken in the lab (tools/verify/
// verify.sh takes them; ftverify and the end-to-end tests call these checks):
//
//   - LAN: every request a client sent to the guest (ICMP echo, UDP echo on
//     port 7, the UDP counter on port 7000) got exactly one reply, except in
//     one short failover window, where a request may go unanswered or be
//     answered twice (the in-flight outputs the new primary re-sends).
//   - Sources: frames sourced from the guest's MAC, captured at each box's
//     LAN NIC egress, never interleave: after the new primary's first frame,
//     the old one sends none (two primaries would).
//   - Count: frames from a MAC in one capture (the backup's tap0, to compare
//     with the gate's drop counter).
//
// Captures are classic pcap or pcapng, Ethernet link type.
package verify

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Frame is one captured frame.
type Frame struct {
	At   time.Time
	Data []byte
}

// ReadFile reads every frame of a pcap or pcapng file.
func ReadFile(path string) ([]Frame, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%s: empty capture", path)
		}
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	type source interface {
		ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	}
	var src source
	if magic == [4]byte{0x0a, 0x0d, 0x0d, 0x0a} {
		r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		src = r
	} else {
		r, err := pcapgo.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if r.LinkType() != layers.LinkTypeEthernet {
			return nil, fmt.Errorf("%s: link type %v, want Ethernet", path, r.LinkType())
		}
		src = r
	}
	var out []Frame
	for {
		data, ci, err := src.ReadPacketData()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			// A capture cut short (tcpdump killed mid-write) still counts up to there.
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, Frame{At: ci.Timestamp, Data: data})
	}
}

// Exchange is one request to the guest and the replies it got.
type Exchange struct {
	Key     string // "icmp id=1 seq=2", "udp7000 :40000 q17", "udp7 :40000 <payload>"
	At      time.Time
	Replies []time.Time
}

// Window is a span of time; the zero Window is empty.
type Window struct{ From, To time.Time }

// Contains reports whether t is inside w (inclusive).
func (w Window) Contains(t time.Time) bool {
	return !w.From.IsZero() && !t.Before(w.From) && !t.After(w.To)
}

// Duration is the window's length.
func (w Window) Duration() time.Duration { return w.To.Sub(w.From) }

func (w Window) String() string {
	if w.From.IsZero() {
		return "none"
	}
	return fmt.Sprintf("%s .. %s (%.1f ms)", w.From.Format("15:04:05.000000"), w.To.Format("15:04:05.000000"),
		float64(w.Duration().Microseconds())/1000)
}

// LANReport is the outcome of CheckLAN.
type LANReport struct {
	Requests   int
	Answered   int // exactly one reply
	Unanswered []Exchange
	Duplicated []Exchange // two or more replies
	Unmatched  []Frame    // replies to no captured request
	Window     Window     // the failover window used (given, or spanning the anomalies)
	Outside    []string   // anomalies outside the window: the check fails if any
}

func (r *LANReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "requests: %d\nanswered_once: %d\nunanswered: %d\nanswered_twice_or_more: %d\nunmatched_replies: %d\nfailover_window: %s\n",
		r.Requests, r.Answered, len(r.Unanswered), len(r.Duplicated), len(r.Unmatched), r.Window)
	for _, s := range r.Outside {
		fmt.Fprintf(&b, "outside the window: %s\n", s)
	}
	return b.String()
}

// LANOptions tune CheckLAN.
type LANOptions struct {
	GuestIP net.IP
	// Window, if set, is where anomalies are allowed. If zero, the window is
	// taken to span all anomalies and must be no longer than MaxWindow; with
	// MaxWindow zero too, no anomaly is allowed (a run without failover).
	Window    Window
	MaxWindow time.Duration
	// Tail: requests this close to the end of the capture are not judged
	// (their replies may have come after it stopped). Default 200ms.
	Tail time.Duration
}

// CheckLAN pairs requests to the guest with its replies in a capture that
// sees both (the client's port on the LAN bridge). It returns an error if
// any anomaly lies outside the failover window, or the window is too long.
func CheckLAN(frames []Frame, o LANOptions) (*LANReport, error) {
	if o.Tail == 0 {
		o.Tail = 200 * time.Millisecond
	}
	guest := o.GuestIP.To4()
	byKey := map[string]*Exchange{}
	var order []*Exchange
	r := &LANReport{}
	var last time.Time
	for _, f := range frames {
		if f.At.After(last) {
			last = f.At
		}
		key, dir := classify(f.Data, guest)
		switch dir {
		case toGuest:
			if e, ok := byKey[key]; ok && len(e.Replies) == 0 {
				continue // a retransmission of the same request (same ICMP seq): one request
			}
			e := &Exchange{Key: key, At: f.At}
			byKey[key] = e
			order = append(order, e)
		case fromGuest:
			if e, ok := byKey[key]; ok {
				e.Replies = append(e.Replies, f.At)
			} else {
				r.Unmatched = append(r.Unmatched, f)
			}
		}
	}
	var anomalies []time.Time
	for _, e := range order {
		if last.Sub(e.At) < o.Tail {
			continue
		}
		r.Requests++
		switch len(e.Replies) {
		case 0:
			r.Unanswered = append(r.Unanswered, *e)
			anomalies = append(anomalies, e.At)
		case 1:
			r.Answered++
		default:
			r.Duplicated = append(r.Duplicated, *e)
			anomalies = append(anomalies, e.At)
		}
	}
	for _, f := range r.Unmatched {
		anomalies = append(anomalies, f.At)
	}
	sort.Slice(anomalies, func(i, j int) bool { return anomalies[i].Before(anomalies[j]) })
	if r.Requests == 0 {
		return r, errors.New("no request to the guest in the capture")
	}
	if !o.Window.From.IsZero() {
		r.Window = o.Window
		for _, e := range r.Unanswered {
			if !r.Window.Contains(e.At) {
				r.Outside = append(r.Outside, fmt.Sprintf("%s at %s: no reply", e.Key, e.At.Format("15:04:05.000000")))
			}
		}
		for _, e := range r.Duplicated {
			if !r.Window.Contains(e.At) {
				r.Outside = append(r.Outside, fmt.Sprintf("%s at %s: %d replies", e.Key, e.At.Format("15:04:05.000000"), len(e.Replies)))
			}
		}
		for _, f := range r.Unmatched {
			if !r.Window.Contains(f.At) {
				r.Outside = append(r.Outside, fmt.Sprintf("reply to no request at %s", f.At.Format("15:04:05.000000")))
			}
		}
		if len(r.Outside) > 0 {
			return r, fmt.Errorf("%d anomalies outside the failover window", len(r.Outside))
		}
		return r, nil
	}
	if len(anomalies) > 0 {
		r.Window = Window{anomalies[0], anomalies[len(anomalies)-1]}
		if o.MaxWindow == 0 || r.Window.Duration() > o.MaxWindow {
			return r, fmt.Errorf("anomalies (%d unanswered, %d answered more than once, %d unmatched replies) span %s, more than the %v allowed",
				len(r.Unanswered), len(r.Duplicated), len(r.Unmatched), r.Window, o.MaxWindow)
		}
	}
	for _, e := range r.Duplicated {
		if len(e.Replies) > 2 {
			return r, fmt.Errorf("%s answered %d times", e.Key, len(e.Replies))
		}
	}
	return r, nil
}

type direction int

const (
	other direction = iota
	toGuest
	fromGuest
)

// classify names a frame's request/reply key and its direction relative to
// the guest.
func classify(data []byte, guest net.IP) (string, direction) {
	p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.NoCopy)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if ip == nil {
		return "", other
	}
	var dir direction
	var peer net.IP
	switch {
	case ip.DstIP.Equal(guest):
		dir, peer = toGuest, ip.SrcIP
	case ip.SrcIP.Equal(guest):
		dir, peer = fromGuest, ip.DstIP
	default:
		return "", other
	}
	if icmp, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
		t := icmp.TypeCode.Type()
		if (dir == toGuest && t != layers.ICMPv4TypeEchoRequest) || (dir == fromGuest && t != layers.ICMPv4TypeEchoReply) {
			return "", other
		}
		return fmt.Sprintf("icmp %s id=%d seq=%d", peer, icmp.Id, icmp.Seq), dir
	}
	udp, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if !ok {
		return "", other
	}
	svc, cport := udp.DstPort, udp.SrcPort
	if dir == fromGuest {
		svc, cport = udp.SrcPort, udp.DstPort
	}
	payload := string(udp.Payload)
	switch svc {
	case 7: // echo: the payload is the key
		return fmt.Sprintf("udp7 %s:%d %q", peer, cport, payload), dir
	case 7000: // "INCR name reqid" / "GET name reqid" → "reqid value"
		f := strings.Fields(payload)
		var reqid string
		switch {
		case dir == toGuest && len(f) == 3:
			reqid = f[2]
		case dir == fromGuest && len(f) == 2:
			reqid = f[0]
		default:
			return "", other
		}
		return fmt.Sprintf("udp7000 %s:%d %s", peer, cport, reqid), dir
	}
	return "", other
}

// SourceReport is the outcome of CheckSources.
type SourceReport struct {
	Names    []string
	Count    []int
	First    []time.Time
	Last     []time.Time
	Switches int // how many times the sourcing box changed, in time order
}

func (r *SourceReport) String() string {
	var b strings.Builder
	for i, n := range r.Names {
		if r.Count[i] == 0 {
			fmt.Fprintf(&b, "%s: 0 frames from the guest MAC\n", n)
			continue
		}
		fmt.Fprintf(&b, "%s: %d frames from the guest MAC, %s .. %s\n", n, r.Count[i],
			r.First[i].Format("15:04:05.000000"), r.Last[i].Format("15:04:05.000000"))
	}
	fmt.Fprintf(&b, "source_switches: %d\n", r.Switches)
	return b.String()
}

// CheckSources takes one capture per box (its LAN NIC's egress) and checks
// that frames from mac never come from two boxes interleaved: in time order
// the sourcing box changes at most maxSwitches times (one per failover).
func CheckSources(names []string, captures [][]Frame, mac net.HardwareAddr, maxSwitches int) (*SourceReport, error) {
	type ev struct {
		at  time.Time
		box int
	}
	var evs []ev
	r := &SourceReport{Names: names, Count: make([]int, len(names)), First: make([]time.Time, len(names)), Last: make([]time.Time, len(names))}
	for i, frames := range captures {
		for _, f := range frames {
			if len(f.Data) < 14 || net.HardwareAddr(f.Data[6:12]).String() != mac.String() {
				continue
			}
			if r.Count[i] == 0 || f.At.Before(r.First[i]) {
				r.First[i] = f.At
			}
			if f.At.After(r.Last[i]) {
				r.Last[i] = f.At
			}
			r.Count[i]++
			evs = append(evs, ev{f.At, i})
		}
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].at.Before(evs[j].at) })
	for i := 1; i < len(evs); i++ {
		if evs[i].box != evs[i-1].box {
			r.Switches++
		}
	}
	if r.Switches > maxSwitches {
		return r, fmt.Errorf("the guest MAC's source changed boxes %d times (at most %d failovers expected): two boxes were sourcing it", r.Switches, maxSwitches)
	}
	return r, nil
}

// CountFrom counts the frames whose source MAC is mac.
func CountFrom(frames []Frame, mac net.HardwareAddr) int {
	n := 0
	for _, f := range frames {
		if len(f.Data) >= 14 && net.HardwareAddr(f.Data[6:12]).String() == mac.String() {
			n++
		}
	}
	return n
}
