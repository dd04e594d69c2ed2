package bpf

import (
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
)

// lossTCPriority is the loss injector's tc filter priority in the fallback,
// distinct from the gate's default so both fit on one device.
const lossTCPriority = 2

// LossStats are the loss injector's counters summed over CPUs.
type LossStats struct {
	PassedFrames  uint64 `json:"passed_frames"`  // matching frames let through
	DroppedFrames uint64 `json:"dropped_frames"` // matching frames dropped
	OtherFrames   uint64 `json:"other_frames"`   // frames of another EtherType, let through
}

// Loss is a test-only fault injector: it drops a fraction of the frames on
// one side of a device, chosen with bpf_get_prandom_u32, optionally only
// frames of one EtherType. Frames it lets through go on to the next program
// (TC_ACT_UNSPEC). Its methods are safe for concurrent use.
type Loss struct {
	ifname string
	dir    Direction
	et     uint16

	mu   sync.Mutex
	objs *lossObjects // nil once closed
	att  *attachment
}

type lossObjects struct {
	prog  *ebpf.Program
	cfg   *ebpf.Map
	stats *ebpf.Map
}

func (o *lossObjects) close() {
	o.prog.Close()
	o.cfg.Close()
	o.stats.Close()
}

// loadLoss loads the loss injector's maps, configured, and its program.
func loadLoss(permille uint32, etherType uint16) (*lossObjects, error) {
	if permille > 1000 {
		return nil, fmt.Errorf("loss rate %d‰ is over 1000‰", permille)
	}
	if err := removeMemlock(); err != nil {
		return nil, fmt.Errorf("remove memlock limit: %w", err)
	}
	coll, err := ebpf.NewCollection(lossSpec())
	if err != nil {
		return nil, fmt.Errorf("load loss program: %w", err)
	}
	o := &lossObjects{
		prog:  coll.DetachProgram(LossProgName),
		cfg:   coll.DetachMap(LossCfgMapName),
		stats: coll.DetachMap(LossStatsMapName),
	}
	if err := o.cfg.Update(uint32(0), lossConfig{Permille: permille, EtherTypeRaw: etherTypeRaw(etherType)}, ebpf.UpdateAny); err != nil {
		o.close()
		return nil, fmt.Errorf("configure loss: %w", err)
	}
	return o, nil
}

// AttachLoss attaches a loss injector to side dir of device ifname (in the
// calling thread's network namespace), dropping permille per 1000 frames
// (0..1000) of EtherType etherType, or of every frame if etherType is 0.
// It attaches by TCX, or by a tc filter on kernels without TCX.
func AttachLoss(ifname string, dir Direction, permille uint32, etherType uint16) (*Loss, error) {
	objs, err := loadLoss(permille, etherType)
	if err != nil {
		return nil, fmt.Errorf("attach loss to %s %s: %w", ifname, dir, err)
	}
	att, err := attach(ifname, objs.prog, dir, LossProgName, lossTCPriority, false, false)
	if err != nil {
		objs.close()
		return nil, fmt.Errorf("attach loss to %s %s: %w", ifname, dir, err)
	}
	return &Loss{ifname: ifname, dir: dir, et: etherType, objs: objs, att: att}, nil
}

// Hook is how the injector is attached: HookTCX or HookTC.
func (l *Loss) Hook() string { return l.att.hook }

// SetRate changes the drop rate to permille per 1000 matching frames.
func (l *Loss) SetRate(permille uint32) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.objs == nil {
		return fmt.Errorf("set loss rate on %s: %w", l.ifname, ErrClosed)
	}
	if permille > 1000 {
		return fmt.Errorf("set loss rate on %s: %d‰ is over 1000‰", l.ifname, permille)
	}
	cfg := lossConfig{Permille: permille, EtherTypeRaw: etherTypeRaw(l.et)}
	if err := l.objs.cfg.Update(uint32(0), cfg, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("set loss rate on %s: %w", l.ifname, err)
	}
	return nil
}

// Stats returns the counters summed over CPUs.
func (l *Loss) Stats() (LossStats, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.objs == nil {
		return LossStats{}, fmt.Errorf("read loss stats on %s: %w", l.ifname, ErrClosed)
	}
	s, err := lossStats(l.objs.stats)
	if err != nil {
		return LossStats{}, fmt.Errorf("read loss stats on %s: %w", l.ifname, err)
	}
	return s, nil
}

func lossStats(m *ebpf.Map) (LossStats, error) {
	var per []lossCounters
	if err := m.Lookup(uint32(0), &per); err != nil {
		return LossStats{}, err
	}
	var s LossStats
	for _, c := range per {
		s.PassedFrames += c.PassedFrames
		s.DroppedFrames += c.DroppedFrames
		s.OtherFrames += c.OtherFrames
	}
	return s, nil
}

// Close detaches the injector and frees its program and maps. Idempotent.
func (l *Loss) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.objs == nil {
		return nil
	}
	err := l.att.detach()
	l.objs.close()
	l.objs = nil
	if err != nil {
		return fmt.Errorf("detach loss from %s %s: %w", l.ifname, l.dir, err)
	}
	return nil
}
