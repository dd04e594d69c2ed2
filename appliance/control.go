package appliance

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The control protocol: a client connects to the unix socket, writes one
// JSON request line {"op":"status"} (or "ack") and reads one JSON response
// line {"ok":true,"status":{…}} or {"ok":false,"error":"…"}; then the
// server closes the connection. Only root (or the daemon's own user) may
// connect: the socket is 0600 and the peer's credentials are checked.

// ControlRequest is one request on the control socket.
type ControlRequest struct {
	Op string `json:"op"` // "status" or "ack"
}

// Controller is what the control socket serves (*Box).
type Controller interface {
	// Status returns a snapshot of the box.
	Status(ctx context.Context) (*Status, error)
	// Ack acknowledges the alarms that stay until an operator saw them
	// (a cold start, rival primaries) and returns the status after.
	Ack(ctx context.Context) (*Status, error)
}

// ControlResponse is the answer.
type ControlResponse struct {
	OK     bool    `json:"ok"`
	Error  string  `json:"error,omitempty"`
	Status *Status `json:"status,omitempty"`
}

// ListenControl creates the control socket at path: its directory (0755)
// if missing, the socket itself 0600. A stale socket left by a dead daemon
// is replaced; a live one (something answers) is an error, and so is
// anything at path that is not a socket (a typo must not delete a file).
func ListenControl(path string) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("control socket: empty path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("control socket %s: exists and is not a socket (%s): refusing to replace it; fix box.control_socket", path, describeMode(fi.Mode()))
		}
		c, err := net.DialTimeout("unix", path, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: another daemon is listening", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("control socket %s: remove stale socket: %w", path, err)
		}
	}
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("control socket %s: chmod: %w", path, err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(true)
	return l, nil
}

func describeMode(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a directory"
	case m.Type() == fs.ModeSymlink:
		return "a symbolic link"
	}
	return "mode " + m.String()
}

// ServeControl answers control requests on l until ctx ends or l is
// closed. It closes l (removing the socket) when it returns.
func ServeControl(ctx context.Context, l net.Listener, box Controller, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	defer l.Close()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("control socket: accept: %w", err)
		}
		go func() {
			if err := serveConn(ctx, c, box); err != nil {
				log.Debug("control connection", "err", err)
			}
		}()
	}
}

func serveConn(ctx context.Context, c net.Conn, box Controller) error {
	defer c.Close()
	if err := checkPeer(c); err != nil {
		_ = json.NewEncoder(c).Encode(ControlResponse{Error: err.Error()})
		return err
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(io.LimitReader(c, 4096)).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return fmt.Errorf("read request: %w", err)
	}
	var req ControlRequest
	resp := ControlResponse{}
	if err := json.Unmarshal(line, &req); err != nil {
		resp.Error = "malformed request: " + err.Error()
	} else {
		switch req.Op {
		case "status", "ack":
			qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			op := box.Status
			if req.Op == "ack" {
				op = box.Ack
			}
			s, err := op(qctx)
			cancel()
			if err != nil {
				resp.Error = err.Error()
			} else {
				resp.OK, resp.Status = true, s
			}
		default:
			resp.Error = fmt.Sprintf("unknown op %q", req.Op)
		}
	}
	if err := json.NewEncoder(c).Encode(resp); err != nil {
		return fmt.Errorf("write response: %w", err)
	}
	return nil
}

// checkPeer admits root and the daemon's own user.
func checkPeer(c net.Conn) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return fmt.Errorf("peer credentials: %w", err)
	}
	if cerr != nil {
		return fmt.Errorf("peer credentials: %w", cerr)
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("uid %d may not use the control socket", cred.Uid)
	}
	return nil
}

// QueryStatus asks the daemon at the control socket path for its status.
func QueryStatus(ctx context.Context, path string) (*Status, error) {
	return control(ctx, path, "status")
}

// Acknowledge acknowledges the daemon's standing alarms (Controller.Ack)
// and returns its status after.
func Acknowledge(ctx context.Context, path string) (*Status, error) {
	return control(ctx, path, "ack")
}

func control(ctx context.Context, path, op string) (*Status, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if err := json.NewEncoder(c).Encode(ControlRequest{Op: op}); err != nil {
		return nil, fmt.Errorf("control socket %s: send: %w", path, err)
	}
	var resp ControlResponse
	if err := json.NewDecoder(io.LimitReader(c, 1<<20)).Decode(&resp); err != nil {
		return nil, fmt.Errorf("control socket %s: read: %w", path, err)
	}
	if !resp.OK || resp.Status == nil {
		return nil, fmt.Errorf("control socket %s: daemon says: %s", path, resp.Error)
	}
	return resp.Status, nil
}

// SdNotify sends a state ("READY=1", "STATUS=…", "STOPPING=1") to systemd
// through $NOTIFY_SOCKET (sd_notify(3)). Without the variable it does
// nothing and returns nil.
func SdNotify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:] // abstract namespace
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}
