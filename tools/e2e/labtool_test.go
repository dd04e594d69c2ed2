package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"ftbox/tools/testenv"
)

// The lab tool itself (tools/lab): what it leaves behind in the processes it
// starts and in its pidfiles.

// labEnv is the environment tools/lab runs with for the lab in state.
func labEnv(state, bin string) []string {
	return append(os.Environ(), "FTBOX="+bin, "FTBOX_LAB_STATE="+state, "PATH=/usr/local/go/bin:"+os.Getenv("PATH"))
}

// tryFlock reports whether an exclusive flock on path can be taken now
// (and gives it back at once).
func tryFlock(t *testing.T, path string) bool {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
}

// lockHolders names the processes that have path open (from /proc).
func lockHolders(path string) []string {
	var out []string
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err == nil && target == path {
			pid := strings.Split(fd, "/")[2]
			comm, _ := os.ReadFile("/proc/" + pid + "/comm")
			out = append(out, pid+" "+strings.TrimSpace(string(comm)))
		}
	}
	return out
}

// TestLabDaemonsDropCallersLock: a caller holds a lock (the way a shell
// holds the lab lock: `exec 9>LOCK; flock 9`, or `flock LOCK CMD`) while it
// runs `tools/lab up`, and then dies. The lock must be free again: the
// daemons tools/lab started (arbiter, both boxes, the logging-link capture)
// must not have inherited the caller's descriptor, or a dead caller's lock
// stays held for as long as the lab runs.
func TestLabDaemonsDropCallersLock(t *testing.T) {
	for _, tc := range []struct{ name, script string }{
		// fd 9, as a shell script takes a lock.
		{"fd9", `exec 9>"$1"; flock 9; "$2" up; exec sleep 600`},
		// flock(1)'s command mode: the command inherits the lock's descriptor.
		{"flock-command", `exec flock "$1" sh -c '"$0" up && exec sleep 600' "$2"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testenv.Root(t)
			testenv.Tool(t, "flock")
			bin := build(t)
			state, err := os.MkdirTemp("/run", "ftbox-e2e-")
			if err != nil {
				t.Fatal(err)
			}
			lock := filepath.Join(state, "caller.lock")
			l := &Lab{t: t, state: state, ftbox: bin}
			t.Cleanup(func() {
				if out, err := l.run("down"); err != nil {
					t.Errorf("tools/lab down: %v\n%s", err, out)
				}
				os.RemoveAll(state)
			})
			out, err := os.CreateTemp(state, "caller-*.out")
			if err != nil {
				t.Fatal(err)
			}
			caller := exec.Command("bash", "-c", tc.script, "_", lock, filepath.Join(repo, "tools/lab"))
			caller.Env = labEnv(state, bin)
			caller.Stdout, caller.Stderr = out, out
			// Its own process group, so that killing the caller kills all of it
			// (flock(1) and its command), and nothing else: the daemons are in
			// sessions of their own.
			caller.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := caller.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- caller.Wait() }()
			// Up once both boxes answer PROTECTED.
			deadline := time.Now().Add(60 * time.Second)
			for {
				_, ca, _ := l.Status("a")
				_, cb, _ := l.Status("b")
				if ca == 0 && cb == 0 {
					break
				}
				select {
				case err := <-exited:
					b, _ := os.ReadFile(out.Name())
					t.Fatalf("the caller exited (%v) before the lab was up:\n%s", err, b)
				default:
				}
				if time.Now().After(deadline) {
					b, _ := os.ReadFile(out.Name())
					t.Fatalf("the lab is not up after 60 s:\n%s", b)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if tryFlock(t, lock) {
				t.Fatalf("the caller's lock is free while the caller still holds it")
			}
			syscall.Kill(-caller.Process.Pid, syscall.SIGKILL)
			<-exited
			var free bool
			for i := 0; i < 20 && !free; i++ { // the kernel drops a dead process's files at once; allow a moment
				free = tryFlock(t, lock)
				if !free {
					time.Sleep(50 * time.Millisecond)
				}
			}
			if !free {
				t.Errorf("the caller died, its lock is still held, by the lab's daemons: %q", lockHolders(lock))
			}
			if _, code, err := l.Status("a"); err != nil || code != 0 {
				t.Errorf("box a after the caller died: exit %d, %v (the daemons should run on)", code, err)
			}
		})
	}
}

// pidOf reads a lab pidfile: the pid, and whether that process is alive
// (not a zombie).
func pidOf(t *testing.T, path string) (int, bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, false
	}
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return pid, false
	}
	s := string(st)
	if i := strings.LastIndex(s, ") "); i >= 0 && i+2 < len(s) && s[i+2] == 'Z' {
		return pid, false
	}
	return pid, true
}

// TestLabKillStart: `tools/lab kill X` immediately followed by `tools/lab
// start X` starts a new daemon and reports it: start succeeds, and the
// pidfile names a new, live process, never the killed one. (Before, start
// could read the killed daemon's pidfile and report a false exit, or leave
// the old pid in it.)
func TestLabKillStart(t *testing.T) {
	l := Up(t)
	pidfile := map[string]string{"arb": "arb/arbiter.pid", "b": "b/ftbox.pid"}
	for round := 0; round < 3; round++ {
		for _, who := range []string{"arb", "b"} {
			for _, sig := range []string{"KILL", "TERM"} {
				f := filepath.Join(l.state, pidfile[who])
				old, alive := pidOf(t, f)
				if !alive {
					t.Fatalf("round %d: %s is not running before the kill (pidfile %s: %d)", round, who, f, old)
				}
				if out, err := l.run("kill", who, sig); err != nil {
					t.Fatalf("tools/lab kill %s %s: %v\n%s", who, sig, err, out)
				}
				out, err := l.run("start", who)
				pid, alive := pidOf(t, f)
				if err != nil {
					t.Fatalf("round %d: tools/lab start %s right after kill %s: %v\n%s", round, who, sig, err, out)
				}
				if pid == old || !alive {
					t.Fatalf("round %d: after kill %s + start %s the pidfile says pid %d (the killed one was %d), alive %v\n%s",
						round, sig, who, pid, old, alive, out)
				}
				if !strings.Contains(out, strconv.Itoa(pid)) {
					t.Errorf("round %d: tools/lab start %s does not report the new pid %d: %q", round, who, pid, out)
				}
			}
		}
	}
	// The restarted daemons are the ones that answer: box b's control socket
	// (whether it rejoins is the product's business, not the lab tool's).
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, code, err := l.Status("b"); err == nil && code != 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restarted box b does not answer ftbox status")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
