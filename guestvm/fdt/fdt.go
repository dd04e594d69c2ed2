// Package fdt builds flattened device trees (DTB format version 17) and
// describes the ftbox virt machine the way QEMU 7.2's "virt" machine does.
package fdt

import (
	"encoding/binary"
)

// DTB tokens and header constants.
const (
	Magic           = 0xd00dfeed
	Version         = 17
	LastCompVersion = 16
	headerSize      = 40

	tokenBeginNode = 1
	tokenEndNode   = 2
	tokenProp      = 3
	tokenNop       = 4
	tokenEnd       = 9
)

// Prop is one property: a name and its raw (big-endian) value.
type Prop struct {
	Name  string
	Value []byte
}

// Node is a device-tree node. Properties and children keep their insertion
// order in the blob.
type Node struct {
	Name     string
	Props    []Prop
	Children []*Node
}

// NewNode returns a node named name ("" for the root).
func NewNode(name string) *Node { return &Node{Name: name} }

// Child appends a child node and returns it.
func (n *Node) Child(name string) *Node {
	c := NewNode(name)
	n.Children = append(n.Children, c)
	return c
}

// Prop appends a property with a raw value and returns n.
func (n *Node) Prop(name string, value []byte) *Node {
	n.Props = append(n.Props, Prop{Name: name, Value: value})
	return n
}

// Empty appends a property without value (a boolean such as
// "interrupt-controller").
func (n *Node) Empty(name string) *Node { return n.Prop(name, []byte{}) }

// U32 appends a property of one or more 32-bit cells.
func (n *Node) U32(name string, v ...uint32) *Node {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.BigEndian.PutUint32(b[4*i:], x)
	}
	return n.Prop(name, b)
}

// U64 appends a property of one or more 64-bit values (two cells each).
func (n *Node) U64(name string, v ...uint64) *Node {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.BigEndian.PutUint64(b[8*i:], x)
	}
	return n.Prop(name, b)
}

// String appends a NUL-terminated string property.
func (n *Node) String(name, v string) *Node { return n.Strings(name, v) }

// Strings appends a string-list property.
func (n *Node) Strings(name string, v ...string) *Node {
	var b []byte
	for _, s := range v {
		b = append(b, s...)
		b = append(b, 0)
	}
	return n.Prop(name, b)
}

// Bytes appends a property with the given bytes.
func (n *Node) Bytes(name string, v []byte) *Node {
	return n.Prop(name, append([]byte{}, v...))
}

// Phandle sets the node's phandle.
func (n *Node) Phandle(h uint32) *Node { return n.U32("phandle", h) }

// Build serializes the tree rooted at root into a DTB blob with an empty
// memory reservation map. Property names are stored once each in the
// strings block.
func Build(root *Node, bootCPU uint32) []byte {
	var strs []byte
	offs := map[string]uint32{}
	nameOff := func(s string) uint32 {
		if o, ok := offs[s]; ok {
			return o
		}
		o := uint32(len(strs))
		strs = append(strs, s...)
		strs = append(strs, 0)
		offs[s] = o
		return o
	}
	var st []byte
	u32 := func(v uint32) { st = binary.BigEndian.AppendUint32(st, v) }
	pad := func() {
		for len(st)%4 != 0 {
			st = append(st, 0)
		}
	}
	var emit func(n *Node)
	emit = func(n *Node) {
		u32(tokenBeginNode)
		st = append(st, n.Name...)
		st = append(st, 0)
		pad()
		for _, p := range n.Props {
			u32(tokenProp)
			u32(uint32(len(p.Value)))
			u32(nameOff(p.Name))
			st = append(st, p.Value...)
			pad()
		}
		for _, c := range n.Children {
			emit(c)
		}
		u32(tokenEndNode)
	}
	emit(root)
	u32(tokenEnd)

	const rsvOff = headerSize // 40 is 8-aligned
	const rsvSize = 16        // just the terminating entry
	structOff := uint32(rsvOff + rsvSize)
	stringsOff := structOff + uint32(len(st))
	total := stringsOff + uint32(len(strs))

	out := make([]byte, 0, total)
	for _, v := range []uint32{Magic, total, structOff, stringsOff, rsvOff, Version, LastCompVersion,
		bootCPU, uint32(len(strs)), uint32(len(st))} {
		out = binary.BigEndian.AppendUint32(out, v)
	}
	out = append(out, make([]byte, rsvSize)...)
	out = append(out, st...)
	out = append(out, strs...)
	return out
}
