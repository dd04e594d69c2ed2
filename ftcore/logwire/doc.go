// Package logwire is the wire format of the logging channel: entries, frames,
// fragmentation, and the authentication and encryption of every frame. It is
// pure logic (no sockets, no clocks, no randomness): the caller supplies
// buffers, nonces and sequence numbers' context, and applies nothing that
// Open did not return with VerdictOK.
//
// # Frame
//
// A frame is the payload of an Ethernet frame of EtherType 0x88B5 (the
// caller adds the 14-byte Ethernet header). All integers are big-endian.
//
//	 0               1               2               3
//	 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7
//	+-------------------------------+---------------+---------------+
//	|        magic 0x4654 "FT"      |  version = 2  | flags (b0 HELLO)|  0
//	+---------------+---------------+---------------+---------------+
//	| role 1=P 2=B  | reserved = 0  |          entry count          |  4
//	+---------------+---------------+-------------------------------+
//	|                          session id                           |  8
//	+---------------------------------------------------------------+
//	|                         epoch (64 bits)                       | 12
//	+---------------------------------------------------------------+
//	|          seq (64): packet number = AEAD nonce, never reused   | 20
//	+---------------------------------------------------------------+
//	|          ack (64): cumulative ack, the channel layer's        | 28
//	+---------------------------------------------------------------+
//	|          base (64): stream position of the first entry        | 36
//	+===============================================================+
//	| entries (encrypted in data frames, clear in hello frames):    | 44
//	|   type (8) | body length (16) | body …   then the next entry  |
//	+===============================================================+
//	|          tag (128): Poly1305, or HMAC-SHA256[:16] for hellos  |
//	+---------------------------------------------------------------+
//
// Overhead: 60 bytes per frame (44 header + 16 tag) and 3 per entry. The
// smallest frame (no entries) is 60 bytes, above Ethernet's 46-byte minimum
// payload, so a frame is never padded on the wire.
//
// Entry bodies (type: layout):
//
//	 1 hello            version u8, role u8, epoch u64, nonce [32], echo [32]
//	 2 input frame      icount u64, frame bytes…            P→B
//	 3 clock sync       icount, time, rate num, rate den (u64 each)   P→B
//	 4 console input    icount u64, bytes…                   P→B
//	 5 progress         icount u64 ("no event before icount")   P→B
//	 6 released output  watermark u64 (output frames released)  P→B
//	 7 digest           icount u64, sum [32]                 both
//	 8 ack              seq u64 (cumulative), icount u64     B→P
//	 9 heartbeat        time u64 (sender's monotonic ns), icount u64   both
//	10 divergence alarm icount u64, local [32], remote [32]  B→P
//	11 fragment         id u64, offset u32, total u32, piece…  both
//	12 snapshot         icount, outputs, total, offset (u64 each), sum [32], data…  P→B
//	13 in sync          icount u64 (the log covers every released output)  P→B
//
// Version 2 added types 12 and 13 (state transfer to a joining backup); the
// layout is otherwise version 1's. The golden frames of both versions are
// kept in testdata: the current ones must be produced and decoded exactly,
// the older ones must be refused as UnknownVersion.
//
// A fragment carries bytes [offset, offset+len) of another entry's whole
// encoding (type, length, body) of total bytes; Reassembler rebuilds it, in
// any order and with duplicates, and refuses overlaps, inconsistent totals,
// entries above ReassemblyLimits.MaxSize, more than MaxPartial partial
// entries, and (by sequence number, not wall time) partial entries older
// than Timeout. With the default 1500-byte MTU an entry may be 1440 bytes
// encoded, so a 1514-byte input frame (1525 encoded) travels as two
// fragments.
//
// # Keys and sessions
//
// Both boxes hold a 32-byte pre-shared key (PSK).
//
//   - Hello frames (flag HELLO, session 0, seq/ack/base 0, one hello entry,
//     137 bytes) are not encrypted; they are authenticated with
//     HMAC-SHA256 under HKDF(PSK, info "ftbox/logwire v1 hello"), truncated
//     to 16 bytes. A HMAC needs no nonce, so restarting boxes cannot reuse
//     one under the long-lived key.
//   - The initiator sends a hello with a fresh random nonce; the responder
//     answers with its own fresh nonce and echoes the initiator's. Session
//     keys: HKDF-SHA256(ikm PSK, salt primary nonce ‖ backup nonce, info
//     "ftbox/logwire v1 session" ‖ epoch) → 32-byte primary→backup key,
//     32-byte backup→primary key, 4-byte session id.
//   - Data frames: ChaCha20-Poly1305 under the sending direction's key,
//     nonce = 4 zero bytes ‖ seq, associated data = the 44-byte header, the
//     entries encrypted. Seq starts at 1 and is assigned by Seal; it is never
//     reused under a key (Seal refuses after 2^64-1), so a retransmission is
//     a new frame with a new seq — the channel layer tracks its own stream
//     position in base and ack. Reusing a seq with a different header would
//     reuse a ChaCha20-Poly1305 nonce, which leaks the Poly1305 key.
//   - Anti-replay: a 1024-wide sliding window per direction; a seq already
//     seen or 1024 or more below the highest is refused as a replay. The
//     window is checked before decryption and advanced only after the tag
//     verifies.
//
// # Verdicts
//
// Open checks, in order: size (TooLarge), header structure (Malformed),
// version (UnknownVersion, with a *VersionError carrying the peer's
// version), hello flag (Malformed on a data session), session id and sender
// role (WrongSession: includes our own frames reflected back), replay window
// (Replay), tag (BadTag); then, for authentic frames only, the epoch (older
// than ours: StaleEpoch; newer is returned for the caller to act on) and the
// entries (Malformed: bad structure, a count that disagrees with the header,
// or an entry the sender's role may not send). Only VerdictOK returns
// entries. Every verdict is counted in Counters; errors wrap a sentinel
// (ErrBadTag, …) so VerdictOf and errors.Is classify them.
//
// # Replayed hellos: what is and is not prevented
//
//   - A hello below the receiver's epoch is refused (OpenHello's minEpoch).
//   - An answer is fresh by construction: NewSession on the initiator side
//     requires peer.Echo == our nonce, so an old answer cannot be replayed.
//   - An initiating hello cannot be proven fresh to the responder (it has
//     seen no nonce of the responder's). A replayed one makes the responder
//     derive a session with its own fresh nonce, which nobody but a key
//     holder can use; it stays unconfirmed (Session.Confirmed) until an
//     authentic data frame arrives. Residual risk: a replay of an initiating
//     hello of the current epoch costs the responder a key derivation and an
//     answer, and a channel layer that abandoned a working session for an
//     unconfirmed one would be knocked off the link. The channel layer
//     should keep its current session until the new one is confirmed, and
//     rate-limit hellos.
//   - Epochs are not secret and a stale peer still holds the PSK: the epoch
//     check stops an old primary's authentic frames from being applied, not
//     from being sent. Two primaries in one epoch are prevented by the
//     arbiter, not by this package.
//   - The PSK is long-lived: compromise of it exposes every session whose
//     hellos were captured (no forward secrecy; an ephemeral Diffie-Hellman
//     in the hellos would add it).
//
// # Buffers
//
// NewBatch writes into the caller's buffer and Seal returns a frame that
// aliases it; Add does not allocate. Open decrypts in place: the frame's
// bytes are overwritten with plaintext (or zeros after a bad tag) and the
// returned Frame and decoded entries alias them until the caller reuses the
// buffer. Reassembled entries own their bytes.
//
// # Not here
//
// Sequencing, acknowledgement, retransmission, flow control, ordering of
// entries by base, heartbeat timing, hello retries and session replacement
// belong to the channel layer in ftcore.
package logwire
