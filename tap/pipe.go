package tap

import "sync"

// Pipe returns two connected in-memory Ports: a frame written to one is read
// from the other. Each direction buffers up to depth frames; when full, a
// write drops the frame, as a real link under load would.
func Pipe(depth int) (Port, Port) {
	ab := make(chan []byte, depth)
	ba := make(chan []byte, depth)
	a := &pipeEnd{in: ba, out: ab, done: make(chan struct{})}
	b := &pipeEnd{in: ab, out: ba, done: make(chan struct{})}
	a.peer, b.peer = b, a
	return a, b
}

type pipeEnd struct {
	in, out chan []byte
	done    chan struct{}
	once    sync.Once
	peer    *pipeEnd
}

func (p *pipeEnd) ReadFrame(buf []byte) (int, error) {
	// Checked first: a select with both cases ready picks at random, and a
	// closed end must not hand out frames still queued.
	select {
	case <-p.done:
		return 0, ErrClosed
	default:
	}
	select {
	case <-p.done:
		return 0, ErrClosed
	case f := <-p.in:
		n := copy(buf, f)
		if n < len(f) {
			return n, ErrTruncated
		}
		return n, nil
	}
}

func (p *pipeEnd) WriteFrame(f []byte) error {
	select {
	case <-p.done:
		return ErrClosed
	default:
	}
	select {
	case p.out <- append([]byte(nil), f...):
	case <-p.peer.done: // the peer is gone: the frame is lost, like on a cut cable
	default: // full: drop
	}
	return nil
}

func (p *pipeEnd) Close() error {
	p.once.Do(func() { close(p.done) })
	return nil
}
