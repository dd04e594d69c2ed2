package logwire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.hex from the current encoder")

// The golden frames are made with the fixed PSK and nonces of
// helpers_test.go (testPSK, nonceP, nonceB, epoch 7): a change to the header,
// an entry layout, a KDF label or the AEAD construction changes these bytes,
// so a format change has to be deliberate (go test -run Golden -update, and
// a version bump if deployed boxes could disagree).
func goldenFrames(t *testing.T) map[string][]byte {
	p, b := pair(t, Options{})
	hp, hb := hellos()
	ep := endpoint(t, Options{})
	helloP, _ := ep.SealHello(nil, hp)
	helloB, _ := ep.SealHello(nil, hb)
	var plain []byte
	for _, e := range primaryEntries() {
		plain, _ = AppendEntry(plain, e)
	}
	return map[string][]byte{
		vname("hello_primary"):   helloP,
		vname("hello_backup"):    helloB,
		vname("entries_p2b"):     plain,
		vname("frame_p2b"):       mustSeal(t, p, 11, 22, primaryEntries()...),
		vname("frame_b2p"):       mustSeal(t, b, 33, 44, backupEntries()...),
		vname("frame_p2b_empty"): mustSeal(t, p, 0, 0),
	}
}

// vname is a golden file's name for the current version: a version bump
// writes a new set with -update and leaves the older ones, which
// TestGoldenOlderVersionsRefused keeps checking.
func vname(base string) string { return fmt.Sprintf("%s_v%d", base, Version) }

func writeHex(path string, b []byte, comment string) error {
	var sb strings.Builder
	fmt.Fprintf(&sb, "# %s\n# %d bytes; regenerate with: go test ./ftcore/logwire -run Golden -update\n", comment, len(b))
	for len(b) > 0 {
		n := min(len(b), 32)
		sb.WriteString(hex.EncodeToString(b[:n]))
		sb.WriteByte('\n')
		b = b[n:]
	}
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}

func readHex(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []byte
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		b, err := hex.DecodeString(line)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, b...)
	}
	return out, nil
}

var goldenComments = map[string]string{
	"hello_primary":   "hello frame: primary, epoch 7, nonce a0..bf, no echo; HMAC key from testPSK 00..1f",
	"hello_backup":    "hello frame: backup, epoch 7, nonce b0..cf, echo a0..bf",
	"entries_p2b":     "plaintext entries of frame_p2b (primaryEntries in helpers_test.go)",
	"frame_p2b":       "data frame primary→backup, seq 1, ack 11, base 22, session keys from testPSK + both nonces",
	"frame_b2p":       "data frame backup→primary, seq 1, ack 33, base 44 (backupEntries)",
	"frame_p2b_empty": "data frame primary→backup with no entries, seq 2 (overhead only)",
}

func TestGolden(t *testing.T) {
	for name, got := range goldenFrames(t) {
		path := filepath.Join("testdata", name+".hex")
		if *update {
			base := strings.TrimSuffix(name, fmt.Sprintf("_v%d", Version))
			if err := writeHex(path, got, fmt.Sprintf("version %d: %s", Version, goldenComments[base])); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := readHex(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: encoding changed\n got %x\nwant %x", name, got, want)
		}
	}
}

// TestGoldenDecodes opens the checked-in frames, so that the decoder too is
// pinned to the format (not just the encoder).
func TestGoldenDecodes(t *testing.T) {
	read := func(name string) []byte {
		b, err := readHex(filepath.Join("testdata", name+".hex"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ep := endpoint(t, Options{})
	hp, hb := hellos()
	gp, v, err := ep.OpenHello(read(vname("hello_primary")), 0)
	if v != VerdictOK || gp.Nonce != hp.Nonce {
		t.Fatalf("hello_primary: %v %v", v, err)
	}
	gb, v, err := ep.OpenHello(read(vname("hello_backup")), 0)
	if v != VerdictOK || gb.Echo != hb.Echo {
		t.Fatalf("hello_backup: %v %v", v, err)
	}
	bs, err := endpoint(t, Options{}).NewSession(hb, gp)
	if err != nil {
		t.Fatal(err)
	}
	f, v, err := bs.Open(read(vname("frame_p2b")))
	if v != VerdictOK || f.Ack != 11 || f.Base != 22 || f.Seq != 1 {
		t.Fatalf("frame_p2b: %v %v %v", v, err, f.Header)
	}
	if !bytes.Equal(f.Entries.Bytes(), read(vname("entries_p2b"))) {
		t.Error("decrypted entries differ from entries_p2b")
	}
	ps, err := endpoint(t, Options{}).NewSession(hp, gb)
	if err != nil {
		t.Fatal(err)
	}
	if _, v, err := ps.Open(read(vname("frame_b2p"))); v != VerdictOK {
		t.Fatalf("frame_b2p: %v %v", v, err)
	}
}

// TestGoldenOlderVersionsRefused opens the golden frames of every older
// version still in testdata: each must be refused as UnknownVersion with
// the frame's version in the error, never parsed as the current format.
func TestGoldenOlderVersionsRefused(t *testing.T) {
	ep := endpoint(t, Options{})
	for v := uint8(1); v < Version; v++ {
		for _, base := range []string{"hello_primary", "hello_backup", "frame_p2b", "frame_b2p", "frame_p2b_empty"} {
			path := filepath.Join("testdata", fmt.Sprintf("%s_v%d.hex", base, v))
			b, err := readHex(path)
			if err != nil {
				t.Fatal(err)
			}
			var ve *VersionError
			if _, err := ParseHeader(b); !errors.As(err, &ve) || ve.Version != v {
				t.Errorf("%s: ParseHeader: %v, want a VersionError for %d", path, err, v)
			}
			if strings.HasPrefix(base, "hello") {
				if _, verdict, _ := ep.OpenHello(b, 0); verdict != VerdictUnknownVersion {
					t.Errorf("%s: OpenHello verdict %v, want unknown_version", path, verdict)
				}
			}
		}
	}
}
