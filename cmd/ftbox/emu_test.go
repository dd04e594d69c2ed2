package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"ftbox/tools/testenv"
)

// buildFtbox compiles this command once per test binary.
var buildFtbox = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "ftbox-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "ftbox")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func ftboxBin(t *testing.T) string {
	t.Helper()
	bin, err := buildFtbox()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestEmuRunHello(t *testing.T) {
	out, err := exec.Command(ftboxBin(t), "emu", "run", "hello", "--append", "greeting=yes").CombinedOutput()
	if err != nil {
		t.Fatalf("ftbox emu run hello: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "hello from ftbox guest") {
		t.Fatalf("unexpected console output: %q", out)
	}
}

func TestEmuRunBadImage(t *testing.T) {
	dir := t.TempDir()
	notELF := filepath.Join(dir, "script.sh")
	os.WriteFile(notELF, []byte("#!/bin/sh\necho hi\n"), 0o644)
	out, err := exec.Command(ftboxBin(t), "emu", "run", notELF).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not an ELF") {
		t.Fatalf("want a not-an-ELF error, got %v: %s", err, out)
	}
	out, err = exec.Command(ftboxBin(t), "emu", "run", "hello", "--mem", "12Q").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--mem") {
		t.Fatalf("want a --mem error, got %v: %s", err, out)
	}
}

// TestEmuRunNetsvcOnTAP is the acceptance check: the netsvc guest on
// a real TAP in a network namespace answers ping and both UDP services.
func TestEmuRunNetsvcOnTAP(t *testing.T) {
	ns := testenv.NetNS(t, "ftt-emu")
	testenv.Tool(t, "ping")
	cmd := exec.Command("ip", "netns", "exec", ns, ftboxBin(t), "emu", "run", "netsvc", "--tap", "ftt0")
	var console syncBuffer
	cmd.Stdout = &console
	cmd.Stderr = &console
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		t.Logf("guest console:\n%s", console.String())
	}()
	waitFor(t, "netsvc to come up", 20*time.Second, func() bool {
		return strings.Contains(console.String(), "netsvc:") &&
			exec.Command("ip", "-n", ns, "link", "show", "ftt0").Run() == nil
	})
	testenv.Run(t, "ip", "-n", ns, "addr", "add", "10.77.0.1/24", "dev", "ftt0")
	testenv.Run(t, "ip", "netns", "exec", ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.77.0.10")
	testenv.Run(t, "ip", "netns", "exec", ns, "ping", "-c", "2", "-i", "0.2", "-W", "2", "-s", "1472", "10.77.0.10")

	var conn *net.UDPConn
	err := testenv.InNetNS(ns, func() (err error) {
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 77, 0, 1)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ask := func(port int, req string) string {
		t.Helper()
		buf := make([]byte, 2048)
		for try := 0; try < 5; try++ {
			if _, err := conn.WriteToUDP([]byte(req), &net.UDPAddr{IP: net.IPv4(10, 77, 0, 10), Port: port}); err != nil {
				t.Fatal(err)
			}
			conn.SetReadDeadline(time.Now().Add(time.Second))
			n, _, err := conn.ReadFromUDP(buf)
			if err == nil {
				return string(buf[:n])
			}
		}
		t.Fatalf("no answer to %q on port %d", req, port)
		return ""
	}
	if got := ask(7, "echo me, please"); got != "echo me, please" {
		t.Fatalf("echo returned %q", got)
	}
	for i, want := range []string{"r1 1", "r2 2", "r3 3"} {
		if got := strings.TrimSpace(ask(7000, fmt.Sprintf("INCR apples r%d", i+1))); got != want {
			t.Fatalf("INCR returned %q, want %q", got, want)
		}
	}
	if got := strings.TrimSpace(ask(7000, "INCR pears p1")); got != "p1 1" {
		t.Fatalf("INCR pears returned %q", got)
	}
	if got := strings.TrimSpace(ask(7000, "GET apples g1")); got != "g1 3" {
		t.Fatalf("GET returned %q", got)
	}
}

// TestEmuRunIdleDoesNotSpin: an idle guest (netsvc waiting in WFI, its timer
// never armed) must leave the host CPU idle too. The loop once took the
// past, masked timer deadline for a wake-up and spun at 100 %.
func TestEmuRunIdleDoesNotSpin(t *testing.T) {
	cmd := exec.Command(ftboxBin(t), "emu", "run", "netsvc")
	var out syncBuffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "netsvc to boot", 10*time.Second, func() bool { return strings.Contains(out.String(), "netsvc:") })
	time.Sleep(1500 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	t.Logf("CPU time over ~1.5 s idle (plus boot): %v", cpu)
	if cpu > 700*time.Millisecond {
		t.Fatalf("emu run used %v of CPU while the guest idled", cpu)
	}
}
