// Package ftcore is the replication core of ftbox: the logging channel
// (sequencing, cumulative acks, retransmission with backoff, in-order
// delivery, flow control) over logwire frames, the Output Rule on the
// primary, deterministic replay on the backup, heartbeats and failure
// detection, roles and epochs, the arbiter protocol and go-live.
//
// It is pure logic: no goroutines, no clocks, no sockets. Every method takes
// the current monotonic time as an argument (now, a time.Duration since any
// fixed origin); everything to be sent is put in an outbox that the owner
// drains with Outbox and writes to the LAN, the logging link or the arbiter.
// Randomness (handshake nonces) comes from the io.Reader in Config.
//
// # Driving a box
//
// One owner (the box loop) holds a Primary or a Backup and its Machine:
//
//	for {
//		feed inbound frames: OnLANFrame, OnLogFrame; arbiter answers: OnArbiterReply
//		if now >= x.Deadline() { x.Step(now) }
//		ob := x.Outbox(); write ob.LAN to the tap, ob.Log to the logging link, …
//		sleep until x.Deadline() or a frame arrives
//	}
//
// Deadline returns now while the guest can run, so a box with a busy guest
// calls Step back to back; each Step runs at most Config.Slice instructions.
//
// # The Output Rule
//
// Every guest output frame gets a number n (1, 2, … in emission order; the
// backup's guest emits the same frames in the same order and numbers them the
// same way). When the primary's guest emits frames at instruction count I,
// the primary makes sure the log holds an entry with icount ≥ I (it appends
// Progress{I} unless the last logged entry already reaches I): every event
// before I was appended before the guest ran past it, so that entry's stream
// position P is the point up to which the backup must hold the log to
// reproduce the frames. The frames are held with P and released, in order,
// once the backup's cumulative ack covers P. The guest keeps running
// meanwhile. The count of released frames is logged as ReleasedOutput{W},
// which lets the backup drop its copies 1..W.
//
// # Go-live
//
// A backup that hears nothing from the primary for Config.Timeout stops
// accepting and acknowledging log (so the primary can release nothing more
// on its account), asks the arbiter for epoch+1, and replays the log it
// holds to its end. When both are done and it won, it releases its buffered
// outputs numbered above the last watermark it saw, reports EventAnnounce
// (the appliance sends a gratuitous ARP for the guest's MAC) and runs the
// guest live as an UNPROTECTED primary of epoch+1. If it lost, it halts.
// A primary that hears nothing from its backup stops releasing output, asks
// the arbiter for epoch+1 and goes on UNPROTECTED (releasing what it held)
// if it won, or halts if it lost. The arbiter grants each epoch once, so at
// most one box releases output in an epoch.
package ftcore
