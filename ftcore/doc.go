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
// which lets the backup drop its copies 1..W. W counts only frames handed
// out in an outbox the owner has already taken (and so written: the owner
// writes a whole outbox before it steps again), never frames of the outbox
// that carries W itself: a box dying after writing its log frames and
// before its LAN frames must not tell the backup those frames are out.
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
//
// # The second path
//
// With Config.SecondPath, heartbeats also go out in Outbox.PeerLAN, for the
// owner to carry over the LAN; frames that arrive that way are fed to
// OnPeerLANFrame (not OnLogFrame). The two paths answer different
// questions. "Is the peer alive?" — any authentic frame on either path says
// yes. "Can the backup be kept in step?" — only the logging link says so.
// Hence, as in VMware FT (where the failure that matters is the loss of the
// logging traffic, and the test-and-set decides who goes on):
//   - The backup declares the primary failed only when both paths were
//     silent for Timeout. With the logging link cut and the LAN up, the
//     primary is alive and serving: taking over would be a needless
//     failover and the arbiter's grant its only protection against two
//     primaries.
//   - The primary gives up its backup when the logging link was silent for
//     Timeout, or has delivered nothing (the oldest unacknowledged entry
//     waited 2×Timeout — a link cut one way), whatever the LAN says: it
//     claims the next epoch and, having won, goes on UNPROTECTED, releasing
//     what it held. While it waits for the arbiter (which may be slow or
//     down) it goes on sending heartbeats, sealed with the claimed epoch:
//     the backup, hearing it, does not claim as well (a needless two-sided
//     claim, which the backup might win). Having won, it stops sending
//     heartbeats on both paths; the backup, hearing nothing for Timeout,
//     claims the same epoch, loses and halts.
//   - A primary heard only claiming is alive but serves nothing: the backup
//     counts it alive for at most Config.ClaimGrace from the first such
//     frame, then claims too (a primary that cannot reach the arbiter must
//     not keep a backup that can from taking over).
//
// So a cut logging link with the LAN up costs no failover: the primary
// keeps the service (unprotected) and the backup halts; the guest is
// re-protected when the halted box rejoins as a new backup (see Rejoining).
// With both paths cut (a partition) both claim and the arbiter picks one.
// Without SecondPath, any cut longer than Timeout is a partition.
//
// # Starting and failure detection
//
// Failure detection starts only once the peer was first heard (a hello
// counts) or Config.ConnectTimeout ran out, so a peer started late never
// causes a failover. A starting box first asks the arbiter for the latest
// grant (Arbiter.Current) and takes the role StartRole gives: with nothing
// granted, a new pair: the configured primary claims epoch 1
// (Config.StartClaim) and the other box is its backup (a cold pair: both
// guests fresh, the log from instruction 0); if it holds the latest grant
// itself, its guest died with it: a cold start, a fresh primary claiming
// the next epoch (Config.ColdStart: after ColdStartDelay, in which a
// surviving peer holding the state takes that epoch first; winning reports
// EventColdStart); if its peer holds it, a joining backup (Config.Join) in
// that epoch. A backup follows the epoch of the primary whose hello it
// answers.
//
// # Epochs and fencing
//
// The arbiter grants each epoch once, so at most one box serves in an
// epoch — as long as the arbiter keeps its state. The boxes do not rest on
// that alone; they fence each other with what they hear (a primary says
// hello only in an epoch it won):
//   - A box that hears its peer live in a later epoch than its own, or, while
//     claiming (or going live), in the epoch it claims, is superseded: it
//     never claims or goes live (a grant it receives anyway is a second
//     grant by an arbiter that lost its state), reports EventYield and
//     halts; its owner restarts it as the peer's joining backup.
//   - A box frozen past Timeout (SIGSTOP, a VM pause, a starved host)
//     neither claims nor releases output for 2×HelloInterval after it
//     resumes, so the hellos of a peer that went live meanwhile are heard
//     first (and the acknowledgements that waited in its socket through the
//     freeze release nothing the peer has not released already).
//   - A primary waiting for a backup says hello on the second path too
//     (never a handshake there): a backup cut off on the logging link
//     learns that its primary went on without it.
//   - Two primaries of one epoch that hear each other (EventRival) hold
//     their output and ask the arbiter for that epoch again: a repeated
//     request wins only for the holder, so exactly one goes on; the other
//     halts.
//   - The owner queries the arbiter every second and feeds the answer to
//     OnArbiterCurrent: a later epoch granted to the peer supersedes this
//     box; an arbiter behind a live box's epoch (it lost its state) is told
//     the epoch again (a test-and-set the box wins); an unprotected primary
//     whose epoch the arbiter names the peer's takes the next one.
//
// # Rejoining (state transfer)
//
// An UNPROTECTED primary keeps sending hellos in its epoch. When a backup
// answers, the primary saves its machine (Machine.Save) at the current
// instruction count between two steps and sends the snapshot as
// logwire.Snapshot pieces at the head of the new log stream, fed while they
// take at most half of the flow-control window, so the log of the guest,
// which keeps running, and the heartbeats go on beside them. Meanwhile it
// logs every event as usual and releases output as an unprotected primary
// (it won its epoch alone): Status.Syncing. Once the backup acknowledged the
// whole snapshot, the primary logs a Progress entry reaching its current
// count and logwire.InSync, and becomes PRIMARY: the Output Rule holds
// again, and losing the backup from then on means claiming the next epoch.
// The backup buffers the log, restores the snapshot when it is whole
// (checking the digest sent with it; a mismatch is a divergence), numbers
// its outputs from the snapshot's output count, and replays. It may go live
// only once it holds the InSync mark (or, in a cold pair, once the first
// log entry showed the stream starts at instruction 0): before that, its
// log need not cover outputs the primary released unprotected. A transfer
// whose peer falls silent is abandoned by both sides without a claim: the
// primary waits for a backup again, the backup for a primary.
package ftcore
