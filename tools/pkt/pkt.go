// Package pkt builds and parses the frames a client exchanges with the netsvc
// guest (ARP, ICMP echo, UDP), using gopacket's layers. Tests, the simulation
// and the benchmarks share it so that none of them hand-rolls checksums.
package pkt

import (
	"fmt"
	"net"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Host is one end of a conversation.
type Host struct {
	MAC net.HardwareAddr
	IP  net.IP
}

var opts = gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}

func serialize(ls ...gopacket.SerializableLayer) []byte {
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		panic(fmt.Sprintf("pkt: serialize: %v", err)) // only our own layers reach here
	}
	return buf.Bytes()
}

// ARPRequest asks who has ip, from src.
func ARPRequest(src Host, ip net.IP) []byte {
	eth := &layers.Ethernet{SrcMAC: src.MAC, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP}
	arp := &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: layers.ARPRequest, SourceHwAddress: src.MAC, SourceProtAddress: src.IP.To4(),
		DstHwAddress: make([]byte, 6), DstProtAddress: ip.To4(),
	}
	return serialize(eth, arp)
}

func ip4(src, dst Host, proto layers.IPProtocol) (*layers.Ethernet, *layers.IPv4) {
	eth := &layers.Ethernet{SrcMAC: src.MAC, DstMAC: dst.MAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: src.IP.To4(), DstIP: dst.IP.To4(), Flags: layers.IPv4DontFragment}
	return eth, ip
}

// Ping is an ICMP echo request.
func Ping(src, dst Host, id, seq uint16, payload []byte) []byte {
	eth, ip := ip4(src, dst, layers.IPProtocolICMPv4)
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: id, Seq: seq}
	return serialize(eth, ip, icmp, gopacket.Payload(payload))
}

// UDP is a datagram from src:sport to dst:dport.
func UDP(src, dst Host, sport, dport uint16, payload []byte) []byte {
	eth, ip := ip4(src, dst, layers.IPProtocolUDP)
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	udp.SetNetworkLayerForChecksum(ip)
	return serialize(eth, ip, udp, gopacket.Payload(payload))
}

// Decoded is what a test wants to know about a frame.
type Decoded struct {
	Eth  *layers.Ethernet
	ARP  *layers.ARP
	IP   *layers.IPv4
	ICMP *layers.ICMPv4
	UDP  *layers.UDP
	// Payload of the ICMP or UDP layer.
	Payload []byte
	// ChecksumsOK reports whether the IPv4 header, ICMP and UDP checksums in
	// the frame are right.
	ChecksumsOK bool
}

// Decode parses a frame; layers it does not find stay nil.
func Decode(frame []byte) Decoded {
	var d Decoded
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.DecodeOptions{NoCopy: false})
	d.Eth, _ = p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	d.ARP, _ = p.Layer(layers.LayerTypeARP).(*layers.ARP)
	d.IP, _ = p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	d.ICMP, _ = p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	d.UDP, _ = p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	switch {
	case d.ICMP != nil:
		d.Payload = d.ICMP.Payload
	case d.UDP != nil:
		d.Payload = d.UDP.Payload
	}
	d.ChecksumsOK = d.IP != nil && checksumsOK(d)
	return d
}

func sum16(b []byte, acc uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		acc += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		acc += uint32(b[len(b)-1]) << 8
	}
	return acc
}

func fold(acc uint32) uint16 {
	for acc>>16 != 0 {
		acc = acc&0xffff + acc>>16
	}
	return uint16(acc)
}

// checksumsOK verifies the checksums as a receiver would: the one's
// complement sum over each checksummed region, checksum included, is 0xffff.
func checksumsOK(d Decoded) bool {
	if fold(sum16(d.IP.Contents, 0)) != 0xffff {
		return false
	}
	switch {
	case d.ICMP != nil:
		return fold(sum16(d.ICMP.Payload, sum16(d.ICMP.Contents, 0))) == 0xffff
	case d.UDP != nil:
		if d.UDP.Checksum == 0 {
			return true // no checksum is allowed over IPv4
		}
		pseudo := append(append([]byte{}, d.IP.SrcIP.To4()...), d.IP.DstIP.To4()...)
		l := uint16(len(d.UDP.Contents) + len(d.UDP.Payload))
		pseudo = append(pseudo, 0, byte(layers.IPProtocolUDP), byte(l>>8), byte(l))
		return fold(sum16(d.UDP.Payload, sum16(d.UDP.Contents, sum16(pseudo, 0)))) == 0xffff
	}
	return true
}
