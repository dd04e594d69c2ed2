// Package bpf holds ftbox's eBPF programs and their loaders: the tap gate,
// which drops a backup's replica outputs and passes a primary's, and a
// test-only loss injector for the logging link.
//
// The programs are written with cilium/ebpf's asm package, so building needs
// no LLVM; the kernel verifier checks them at load time and the tests load
// and run each one.
//
// The gate sits at a TAP device's ingress: the frames the process holding
// the TAP writes (the guest's outputs) pass through it on their way to the
// bridge. A one-entry array map named ftbox_gate holds the role, 0 DROP (the
// value a fresh map has, so a newly loaded gate drops everything) or 1 PASS.
// Passed frames get an skb mark; passed and dropped frames and bytes are
// counted in the per-CPU map ftbox_gate_stat. Find them with
// `bpftool map dump name ftbox_gate`.
//
// Everything that attaches to a device does so in the network namespace of
// the calling OS thread; later calls may come from any goroutine.
package bpf

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
)

// ErrClosed is returned by the methods of a closed Gate or Loss.
var ErrClosed = errors.New("bpf: closed")

// GateOptions tune AttachGate. The zero value is the production setting.
type GateOptions struct {
	// Mark is the skb mark put on passed frames; 0 means DefaultMark.
	Mark uint32
	// ForceTC attaches with a clsact qdisc and a tc filter even where TCX
	// works (tests of the fallback; kernels before 6.6 use it anyway).
	ForceTC bool
	// TCPriority is the tc filter's priority in the fallback; 0 means 1.
	TCPriority uint16
}

// GateStats are the gate's counters summed over CPUs since it was loaded.
// Bytes are whole frames, Ethernet header included.
type GateStats struct {
	PassedFrames  uint64 `json:"passed_frames"`
	PassedBytes   uint64 `json:"passed_bytes"`
	DroppedFrames uint64 `json:"dropped_frames"`
	DroppedBytes  uint64 `json:"dropped_bytes"`
}

// Gate is the tap gate attached to one device. Its methods are safe for
// concurrent use.
type Gate struct {
	ifname string
	mark   uint32

	mu    sync.Mutex
	objs  *gateObjects // nil once closed
	att   *attachment
	mapID ebpf.MapID
}

type gateObjects struct {
	prog  *ebpf.Program
	role  *ebpf.Map
	stats *ebpf.Map
}

func (o *gateObjects) close() {
	o.prog.Close()
	o.role.Close()
	o.stats.Close()
}

// loadGate loads the gate's maps (role DROP) and program, verified by the
// kernel, without attaching them.
func loadGate(mark uint32) (*gateObjects, error) {
	if err := removeMemlock(); err != nil {
		return nil, fmt.Errorf("remove memlock limit: %w", err)
	}
	coll, err := ebpf.NewCollection(gateSpec(mark))
	if err != nil {
		return nil, fmt.Errorf("load gate program: %w", err)
	}
	return &gateObjects{
		prog:  coll.DetachProgram(GateProgName),
		role:  coll.DetachMap(GateMapName),
		stats: coll.DetachMap(GateStatsMapName),
	}, nil
}

// AttachGate loads the gate and attaches it at the ingress of device ifname
// (in the calling thread's network namespace) by TCX, or by a clsact tc
// filter where the kernel has no TCX or opts.ForceTC says so. The gate starts
// in DROP. Close it to detach it and free its maps.
//
// By TCX the gate goes first among the device's ingress programs, so that no
// other program can pass a frame it would drop. By tc it is the filter at
// opts.TCPriority; on a kernel with TCX, a TCX program that passes a frame
// skips every tc filter, the gate's included.
func AttachGate(ifname string, opts GateOptions) (*Gate, error) {
	mark := opts.Mark
	if mark == 0 {
		mark = DefaultMark
	}
	prio := opts.TCPriority
	if prio == 0 {
		prio = 1
	}
	objs, err := loadGate(mark)
	if err != nil {
		return nil, fmt.Errorf("attach gate to %s: %w", ifname, err)
	}
	info, err := objs.role.Info()
	if err != nil {
		objs.close()
		return nil, fmt.Errorf("attach gate to %s: role map info: %w", ifname, err)
	}
	id, _ := info.ID()
	att, err := attach(ifname, objs.prog, Ingress, GateProgName, prio, true, opts.ForceTC)
	if err != nil {
		objs.close()
		return nil, fmt.Errorf("attach gate to %s: %w", ifname, err)
	}
	return &Gate{ifname: ifname, mark: mark, objs: objs, att: att, mapID: id}, nil
}

// Ifname is the device the gate is attached to.
func (g *Gate) Ifname() string { return g.ifname }

// Mark is the skb mark the gate puts on passed frames.
func (g *Gate) Mark() uint32 { return g.mark }

// Hook is how the gate is attached: HookTCX ("tcx") or HookTC ("tc").
func (g *Gate) Hook() string { return g.att.hook }

// MapID is the kernel's id of the ftbox_gate role map (bpftool map dump id N).
func (g *Gate) MapID() uint32 { return uint32(g.mapID) }

// SetPass sets the role: true passes the guest's frames (a primary), false
// drops them (a backup). It is one map update, which the program sees
// from the next frame on.
func (g *Gate) SetPass(pass bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.objs == nil {
		return fmt.Errorf("set gate role on %s: %w", g.ifname, ErrClosed)
	}
	v := RoleDrop
	if pass {
		v = RolePass
	}
	if err := g.objs.role.Update(uint32(0), v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("set gate role on %s: %w", g.ifname, err)
	}
	return nil
}

// Role reads the role from the map: pass is true for PASS.
func (g *Gate) Role() (pass bool, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.objs == nil {
		return false, fmt.Errorf("read gate role on %s: %w", g.ifname, ErrClosed)
	}
	var v uint32
	if err := g.objs.role.Lookup(uint32(0), &v); err != nil {
		return false, fmt.Errorf("read gate role on %s: %w", g.ifname, err)
	}
	return v == RolePass, nil
}

// Stats returns the counters summed over CPUs.
func (g *Gate) Stats() (GateStats, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.objs == nil {
		return GateStats{}, fmt.Errorf("read gate stats on %s: %w", g.ifname, ErrClosed)
	}
	s, err := gateStats(g.objs.stats)
	if err != nil {
		return GateStats{}, fmt.Errorf("read gate stats on %s: %w", g.ifname, err)
	}
	return s, nil
}

func gateStats(m *ebpf.Map) (GateStats, error) {
	var per []gateCounters
	if err := m.Lookup(uint32(0), &per); err != nil {
		return GateStats{}, err
	}
	var s GateStats
	for _, c := range per {
		s.PassedFrames += c.PassedFrames
		s.PassedBytes += c.PassedBytes
		s.DroppedFrames += c.DroppedFrames
		s.DroppedBytes += c.DroppedBytes
	}
	return s, nil
}

// Close detaches the gate (deleting the tc filter, and the clsact qdisc if
// the gate added it and nothing else uses it) and frees its program and
// maps. Frames then flow ungated. Close is idempotent.
func (g *Gate) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.objs == nil {
		return nil
	}
	err := g.att.detach()
	g.objs.close()
	g.objs = nil
	if err != nil {
		return fmt.Errorf("detach gate from %s: %w", g.ifname, err)
	}
	return nil
}
