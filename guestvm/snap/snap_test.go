package snap

import (
	"bytes"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	var b bytes.Buffer
	w := NewWriter(&b)
	w.Tag("hdr")
	w.U8(7)
	w.Bool(true)
	w.U16(0xbeef)
	w.U32(0xdeadbeef)
	w.U64(1 << 60)
	w.Bytes([]byte("payload"))
	w.Raw([]byte{1, 2, 3})
	if w.Err() != nil {
		t.Fatal(w.Err())
	}
	r := NewReader(b.Bytes())
	r.Tag("hdr")
	if r.U8() != 7 || !r.Bool() || r.U16() != 0xbeef || r.U32() != 0xdeadbeef || r.U64() != 1<<60 {
		t.Fatal("scalar mismatch")
	}
	if string(r.Bytes(16)) != "payload" {
		t.Fatal("bytes mismatch")
	}
	raw := make([]byte, 3)
	r.Raw(raw)
	if r.Err() != nil || !bytes.Equal(raw, []byte{1, 2, 3}) || r.Remaining() != 0 {
		t.Fatalf("raw mismatch: %v", r.Err())
	}
}

func TestReaderErrorsStick(t *testing.T) {
	var b bytes.Buffer
	w := NewWriter(&b)
	w.Tag("one")
	w.Bytes(make([]byte, 100))
	data := b.Bytes()

	r := NewReader(data)
	r.Tag("two")
	if r.Err() == nil {
		t.Fatal("wrong tag accepted")
	}
	if r.U64() != 0 {
		t.Fatal("read after error returned data")
	}

	r = NewReader(data)
	r.Tag("one")
	if r.Bytes(10) != nil || r.Err() == nil {
		t.Fatal("oversized field accepted")
	}

	r = NewReader(data[:20])
	r.Tag("one")
	r.Bytes(1000)
	if r.Err() != ErrShort {
		t.Fatalf("truncation: %v", r.Err())
	}
}

type failWriter struct{}

func (failWriter) Write(p []byte) (int, error) { return 0, bytes.ErrTooLarge }

func TestWriterErrorSticks(t *testing.T) {
	w := NewWriter(failWriter{})
	w.U64(1)
	w.U8(2)
	if w.Err() != bytes.ErrTooLarge {
		t.Fatalf("got %v", w.Err())
	}
}
