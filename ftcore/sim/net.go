package sim

import (
	"container/heap"
	"time"
)

// Faults of one direction of a link. Probabilities are per frame.
type Faults struct {
	Loss, Dup, Reorder, Corrupt float64
	Down                        bool // partitioned: every frame lost
}

// LinkID names one direction of one link. Every link has its own faults,
// its own counters and its own interface in the pcapng capture.
type LinkID int

const (
	LogAB  LinkID = iota // logging link (log0), A → B
	LogBA                // logging link, B → A
	PathAB               // second heartbeat path over the LAN (Outbox.PeerLAN), A → B
	PathBA               // second path, B → A
	CliA                 // client → A (the LAN is a hub: the client's frames reach both boxes)
	CliB                 // client → B
	ACli                 // A's released outputs → client
	BCli                 // B's released outputs → client
	NumLinks
)

var linkNames = [NumLinks]string{"log0 A>B", "log0 B>A", "lanpath A>B", "lanpath B>A", "client>A", "client>B", "A>client", "B>client"}

func (l LinkID) String() string { return linkNames[l] }

// LinkStats counts what a link did to the frames put on it.
type LinkStats struct {
	Sent, Lost, Duplicated, Corrupted, Reordered, Delivered, Overflow uint64
	Bytes                                                             uint64
}

// frame is one copy of a frame in flight.
type frame struct {
	at     time.Duration
	seq    uint64 // tie-break: send order
	link   LinkID
	data   []byte
	forged bool
	note   string    // for the capture: "dup", "corrupted", "forged …"
	arb    *arbReply // an arbiter's answer (link -1), not a frame
	cur    *curReply // an answer to the current-epoch query (link -1), not a frame
}

// arrivals is a min-heap of frames by (arrival time, send order): the
// inbound queue of one receiver (a box or the client).
type arrivals []frame

func (a arrivals) Len() int { return len(a) }
func (a arrivals) Less(i, j int) bool {
	if a[i].at != a[j].at {
		return a[i].at < a[j].at
	}
	return a[i].seq < a[j].seq
}
func (a arrivals) Swap(i, j int) { a[i], a[j] = a[j], a[i] }
func (a *arrivals) Push(x any)   { *a = append(*a, x.(frame)) }
func (a *arrivals) Pop() any {
	old := *a
	f := old[len(old)-1]
	old[len(old)-1] = frame{}
	*a = old[:len(old)-1]
	return f
}

func (a *arrivals) push(f frame) { heap.Push(a, f) }

// next is the arrival time of the earliest frame (ok false: none).
func (a arrivals) next() (time.Duration, bool) {
	if len(a) == 0 {
		return 0, false
	}
	return a[0].at, true
}

// pop removes and returns the earliest frame if it has arrived by now.
func (a *arrivals) pop(now time.Duration) (frame, bool) {
	if len(*a) == 0 || (*a)[0].at > now {
		return frame{}, false
	}
	return heap.Pop(a).(frame), true
}

// send puts a frame on a link towards a receiver's queue, applying the
// link's faults. Every random draw comes from the world's generator, in a
// fixed order, so a seed replays exactly.
func (w *World) send(l LinkID, to *arrivals, data []byte) {
	f, st := &w.links[l], &w.linkStats[l]
	st.Sent++
	st.Bytes += uint64(len(data))
	if f.Down || w.rng.Float64() < f.Loss {
		st.Lost++
		w.capture.packet(frame{at: w.Now, link: l, data: data, note: "lost"})
		return
	}
	n := 1
	if w.rng.Float64() < f.Dup {
		n = 2
		st.Duplicated++
	}
	for i := range n {
		d := append([]byte(nil), data...)
		note := ""
		if i > 0 {
			note = "dup"
		}
		if len(d) > 0 && w.rng.Float64() < f.Corrupt {
			d[w.rng.IntN(len(d))] ^= byte(1 + w.rng.IntN(255))
			st.Corrupted++
			note += " corrupted"
		}
		// A link is FIFO (jitter delays the frames behind too) unless the
		// Reorder fault holds one frame back.
		at := max(w.Now+w.opts.Latency+time.Duration(w.rng.Int64N(int64(w.opts.Jitter)+1)), w.fifo[l])
		if w.rng.Float64() < f.Reorder {
			at += time.Duration(w.rng.Int64N(int64(10*w.opts.Latency) + 1))
			st.Reordered++
			note += " delayed"
		} else {
			w.fifo[l] = at
		}
		w.seq++
		to.push(frame{at: at, seq: w.seq, link: l, data: d, note: note})
	}
}
