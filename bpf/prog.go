package bpf

import (
	"encoding/binary"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
)

// Return codes of a SchedCLS program. TCX and a direct-action tc filter read
// them alike: 0 lets the frame go on (TC_ACT_OK, TCX_PASS), 2 drops it
// (TC_ACT_SHOT, TCX_DROP), -1 hands it to the next program or filter
// (TC_ACT_UNSPEC, TCX_NEXT) and, after the last one, lets it go on.
const (
	ActOK     = 0
	ActShot   = 2
	ActUnspec = -1
)

// Map and program names as the kernel shows them (bpftool map show, bpftool
// prog show). The kernel keeps at most 15 characters of an object's name.
const (
	GateMapName      = "ftbox_gate"      // array[1] of u32: the role, 0 DROP, 1 PASS
	GateStatsMapName = "ftbox_gate_stat" // per-CPU array[1] of gateCounters
	GateProgName     = "ftbox_gate"
	LossCfgMapName   = "ftbox_loss_cfg"  // array[1] of lossConfig
	LossStatsMapName = "ftbox_loss_stat" // per-CPU array[1] of lossCounters
	LossProgName     = "ftbox_loss"
)

// Role values in the gate map. Anything other than RolePass drops: the gate
// fails closed.
const (
	RoleDrop uint32 = 0
	RolePass uint32 = 1
)

// DefaultMark is the skb mark the gate puts on the frames it passes.
const DefaultMark uint32 = 0xf7b0_0001

// Offsets of the struct __sk_buff fields the programs use (uapi/linux/bpf.h).
const (
	skbLen     = 0  // __u32 len: the frame's length, Ethernet header included at tc
	skbMark    = 8  // __u32 mark
	skbData    = 76 // __u32 data: start of the frame (direct packet access)
	skbDataEnd = 80 // __u32 data_end
	skbSize    = 192
)

// gateCounters is the value of the gate's per-CPU stats map; the program adds
// to its fields at these offsets.
type gateCounters struct {
	PassedFrames  uint64 // offset 0
	PassedBytes   uint64 // offset 8
	DroppedFrames uint64 // offset 16
	DroppedBytes  uint64 // offset 24
}

// lossConfig is the loss injector's configuration map value.
type lossConfig struct {
	Permille uint32 // frames dropped per 1000 matching frames, 0..1000
	// EtherType to act on as a 16-bit load from the frame reads it (network
	// order in a native-endian load); 0 acts on every frame.
	EtherTypeRaw uint32
}

// lossCounters is the value of the loss injector's per-CPU stats map.
type lossCounters struct {
	PassedFrames  uint64 // offset 0: matched and let through
	DroppedFrames uint64 // offset 8: matched and dropped
	OtherFrames   uint64 // offset 16: another EtherType (or too short), let through
}

var (
	btfU32 = &btf.Int{Name: "__u32", Size: 4}
	btfU64 = &btf.Int{Name: "__u64", Size: 8}
)

// btfStruct describes a struct of u32 or u64 fields for the map's BTF, so
// that bpftool prints the values with field names.
func btfStruct(name string, field btf.Type, size uint32, names ...string) *btf.Struct {
	s := &btf.Struct{Name: name, Size: uint32(len(names)) * size}
	for i, n := range names {
		s.Members = append(s.Members, btf.Member{Name: n, Type: field, Offset: btf.Bits(uint32(i) * size * 8)})
	}
	return s
}

// lookupKey0 emits: r0 = bpf_map_lookup_elem(&map, &key0), where the u32 key
// 0 is kept at fp-4. Clobbers r1-r5.
func lookupKey0(mapName string) asm.Instructions {
	return asm.Instructions{
		asm.StoreImm(asm.RFP, -4, 0, asm.Word), // *(u32 *)(fp-4) = 0
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),                          // r2 = &key
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapName), // r1 = &map
		asm.FnMapLookupElem.Call(),                       // r0 = value or NULL
	}
}

// count emits: atomically add 1 and, if bytes is not nil, *bytes to the two
// u64 counters at r0+off and r0+off+8. Clobbers r1.
func count(off int16, bytes *asm.Register) asm.Instructions {
	insns := asm.Instructions{
		asm.Mov.Imm(asm.R1, 1),
		asm.AddAtomic.Mem(asm.R0, asm.R1, asm.DWord, off), // frames += 1
	}
	if bytes != nil {
		insns = append(insns, asm.AddAtomic.Mem(asm.R0, *bytes, asm.DWord, off+8)) // bytes += len
	}
	return insns
}

// gateInstructions is the gate program. In C:
//
//	role = ftbox_gate[0] (0 if missing)
//	if (st = ftbox_gate_stat[0]) { role == PASS ? st->passed += (1, len) : st->dropped += (1, len) }
//	if (role != PASS) return TC_ACT_SHOT;
//	skb->mark = mark; return TC_ACT_OK;
func gateInstructions(mark uint32) asm.Instructions {
	len8 := asm.R8
	var insns asm.Instructions
	insns = append(insns, asm.Mov.Reg(asm.R6, asm.R1)) // r6 = skb (callee-saved)
	insns = append(insns, lookupKey0(GateMapName)...)
	insns = append(insns,
		asm.Mov.Imm(asm.R7, int32(RoleDrop)),     // r7 = role, DROP unless the map says otherwise
		asm.JEq.Imm(asm.R0, 0, "stats"),          // no value (cannot happen for an array): keep DROP
		asm.LoadMem(asm.R7, asm.R0, 0, asm.Word), // r7 = *value
	)
	stats := lookupKey0(GateStatsMapName)
	stats[0] = stats[0].WithSymbol("stats")
	insns = append(insns, stats...)
	insns = append(insns,
		asm.JEq.Imm(asm.R0, 0, "verdict"),                  // no stats slot: just decide
		asm.LoadMem(len8, asm.R6, skbLen, asm.Word),        // r8 = skb->len
		asm.JEq.Imm(asm.R7, int32(RolePass), "count_pass"), // count under the verdict to come
	)
	insns = append(insns, count(16, &len8)...) // dropped frames, bytes
	insns = append(insns, asm.Ja.Label("verdict"))
	passCount := count(0, &len8) // passed frames, bytes
	passCount[0] = passCount[0].WithSymbol("count_pass")
	insns = append(insns, passCount...)
	insns = append(insns,
		asm.JEq.Imm(asm.R7, int32(RolePass), "pass").WithSymbol("verdict"),
		asm.Mov.Imm(asm.R0, ActShot), // DROP
		asm.Return(),
		asm.Mov.Imm32(asm.R1, int32(mark)).WithSymbol("pass"), // PASS: tag the frame
		asm.StoreMem(asm.R6, skbMark, asm.R1, asm.Word),       // skb->mark = mark (ST to ctx is refused; STX)
		asm.Mov.Imm(asm.R0, ActOK),
		asm.Return(),
	)
	return insns
}

// gateSpec is the gate's maps and program.
func gateSpec(mark uint32) *ebpf.CollectionSpec {
	return &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{
			GateMapName: {
				Name: GateMapName, Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1,
				Key: btfU32, Value: btfU32,
			},
			GateStatsMapName: {
				Name: GateStatsMapName, Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 32, MaxEntries: 1,
				Key: btfU32,
				Value: btfStruct("ftbox_gate_counters", btfU64, 8,
					"passed_frames", "passed_bytes", "dropped_frames", "dropped_bytes"),
			},
		},
		Programs: map[string]*ebpf.ProgramSpec{
			GateProgName: {
				Name: GateProgName, Type: ebpf.SchedCLS, License: "GPL",
				Instructions: gateInstructions(mark),
			},
		},
	}
}

// lossInstructions is the loss injector. In C:
//
//	cfg = ftbox_loss_cfg[0]; st = ftbox_loss_stat[0]; if (!cfg || !st) return TC_ACT_UNSPEC;
//	if (cfg->ethertype && (frame shorter than 14 || eth->h_proto != cfg->ethertype)) { st->other++; return TC_ACT_UNSPEC; }
//	if (bpf_get_prandom_u32() % 1000 < cfg->permille) { st->dropped++; return TC_ACT_SHOT; }
//	st->passed++; return TC_ACT_UNSPEC;
//
// It lets frames go on with TC_ACT_UNSPEC so that later programs still see them.
func lossInstructions() asm.Instructions {
	var insns asm.Instructions
	insns = append(insns, asm.Mov.Reg(asm.R6, asm.R1)) // r6 = skb
	insns = append(insns, lookupKey0(LossCfgMapName)...)
	insns = append(insns,
		asm.JEq.Imm(asm.R0, 0, "next"),
		asm.LoadMem(asm.R7, asm.R0, 0, asm.Word), // r7 = permille
		asm.LoadMem(asm.R8, asm.R0, 4, asm.Word), // r8 = EtherType, 0 = any
	)
	insns = append(insns, lookupKey0(LossStatsMapName)...)
	insns = append(insns,
		asm.JEq.Imm(asm.R0, 0, "next"),
		asm.Mov.Reg(asm.R9, asm.R0), // r9 = counters
		asm.JEq.Imm(asm.R8, 0, "roll"),
		asm.LoadMem(asm.R2, asm.R6, skbData, asm.Word),    // r2 = data
		asm.LoadMem(asm.R3, asm.R6, skbDataEnd, asm.Word), // r3 = data_end
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 14),
		asm.JGT.Reg(asm.R4, asm.R3, "other"),      // no full Ethernet header
		asm.LoadMem(asm.R4, asm.R2, 12, asm.Half), // r4 = h_proto as loaded
		asm.JNE.Reg(asm.R4, asm.R8, "other"),
		asm.FnGetPrandomU32.Call().WithSymbol("roll"),
		asm.Mod.Imm32(asm.R0, 1000), // r0 = rand % 1000 (unsigned, zero-extended)
		asm.JLT.Reg(asm.R0, asm.R7, "drop"),
		asm.Mov.Reg(asm.R0, asm.R9),
	)
	insns = append(insns, count(0, nil)...) // passed
	insns = append(insns, asm.Ja.Label("next"))
	drop := append(asm.Instructions{asm.Mov.Reg(asm.R0, asm.R9).WithSymbol("drop")}, count(8, nil)...)
	insns = append(insns, drop...)
	insns = append(insns,
		asm.Mov.Imm(asm.R0, ActShot),
		asm.Return(),
	)
	other := append(asm.Instructions{asm.Mov.Reg(asm.R0, asm.R9).WithSymbol("other")}, count(16, nil)...)
	insns = append(insns, other...)
	insns = append(insns,
		asm.Mov.Imm(asm.R0, ActUnspec).WithSymbol("next"),
		asm.Return(),
	)
	return insns
}

// lossSpec is the loss injector's maps and program.
func lossSpec() *ebpf.CollectionSpec {
	return &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{
			LossCfgMapName: {
				Name: LossCfgMapName, Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1,
				Key: btfU32, Value: btfStruct("ftbox_loss_config", btfU32, 4, "permille", "ethertype_raw"),
			},
			LossStatsMapName: {
				Name: LossStatsMapName, Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 24, MaxEntries: 1,
				Key: btfU32, Value: btfStruct("ftbox_loss_counters", btfU64, 8, "passed_frames", "dropped_frames", "other_frames"),
			},
		},
		Programs: map[string]*ebpf.ProgramSpec{
			LossProgName: {
				Name: LossProgName, Type: ebpf.SchedCLS, License: "GPL",
				Instructions: lossInstructions(),
			},
		},
	}
}

// etherTypeRaw is the value a 16-bit load of the EtherType field of a frame
// carrying et yields on this host.
func etherTypeRaw(et uint16) uint32 {
	return uint32(binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, et)))
}
