package runlock

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

func TestLive(t *testing.T) {
	dir := t.TempDir()
	a, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A lock file that no process holds (its process died).
	os.WriteFile(filepath.Join(dir, "deadbeef.lock"), []byte("1\n"), 0o600)
	live, err := Live(dir)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(live)
	want := []string{a.Boot, b.Boot}
	slices.Sort(want)
	if !slices.Equal(live, want) {
		t.Fatalf("live %v, want %v", live, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "deadbeef.lock")); !os.IsNotExist(err) {
		t.Error("dead lock file not removed")
	}
	a.Release()
	live, _ = Live(dir)
	if !slices.Equal(live, []string{b.Boot}) {
		t.Fatalf("after release: %v", live)
	}
}

// TestKilledHolder: a lock held by a process that is then killed is seen
// as dead.
func TestKilledHolder(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("flock(1) not available")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "cafe.lock")
	os.WriteFile(path, nil, 0o600)
	cmd := exec.Command("flock", "-x", path, "sh", "-c", "echo ready; exec sleep 30")
	// flock(1) passes the locked descriptor to its child: kill the group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("child: %q %v", line, err)
	}
	if live, _ := Live(dir); !slices.Equal(live, []string{"cafe"}) {
		t.Fatalf("held lock not live: %v", live)
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	cmd.Wait()
	// sleep(1), which holds the descriptor too, dies asynchronously.
	var live []string
	for i := 0; i < 200; i++ {
		if live, _ = Live(dir); len(live) == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(live) != 0 {
		t.Fatalf("killed holder still live: %v", live)
	}
}

func TestExclusive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "serve.lock")
	f, err := Exclusive(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Exclusive(path); err == nil {
		t.Fatal("second exclusive lock granted")
	}
	f.Close()
	g, err := Exclusive(path)
	if err != nil {
		t.Fatalf("lock not released: %v", err)
	}
	g.Close()
}

// TestHolder: a free lock (missing or unlocked file) has no holder; a held
// one names the pid its holder wrote, and probing creates nothing.
func TestHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "serve.lock")
	if pid, held, err := Holder(path); err != nil || held || pid != 0 {
		t.Fatalf("missing lock: pid %d held %v err %v", pid, held, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("Holder created the lock file")
	}
	f, err := Exclusive(path)
	if err != nil {
		t.Fatal(err)
	}
	if pid, held, err := Holder(path); err != nil || !held || pid != os.Getpid() {
		t.Fatalf("held lock: pid %d held %v err %v, want pid %d", pid, held, err, os.Getpid())
	}
	f.Close()
	if pid, held, err := Holder(path); err != nil || held {
		t.Fatalf("released lock: pid %d held %v err %v", pid, held, err)
	}
	// The probe left the lock free for a server to take.
	g, err := Exclusive(path)
	if err != nil {
		t.Fatalf("lock taken by the probe: %v", err)
	}
	g.Close()
}

// TestAcquireRacesLive: Live runs between Acquire's create and its flock
// (the hook stands for the scheduler). The acquiring process must come out
// with a lock file that exists under its boot and that Live reports live,
// not with a lock on a file Live unlinked.
func TestAcquireRacesLive(t *testing.T) {
	dir := t.TempDir()
	raced := false
	testHookCreated = func(string) {
		if raced {
			return // one race; a retry is left alone
		}
		raced = true
		if _, err := Live(dir); err != nil {
			t.Error(err)
		}
	}
	defer func() { testHookCreated = nil }()
	l, err := Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	defer l.Release()
	if _, err := os.Stat(filepath.Join(dir, l.Boot+".lock")); err != nil {
		t.Errorf("lock file of boot %s: %v", l.Boot, err)
	}
	if live, _ := Live(dir); !slices.Equal(live, []string{l.Boot}) {
		t.Errorf("live %v, want [%s]", live, l.Boot)
	}
}

// TestAcquireWaitsForProbe: Live's probe holds the new file's lock for an
// instant (it found it unlocked) when Acquire tries to lock it. Acquire
// must wait, not fail; and if the probe removed the file, take a new one.
func TestAcquireWaitsForProbe(t *testing.T) {
	for _, remove := range []bool{false, true} {
		t.Run(map[bool]string{false: "kept", true: "removed"}[remove], func(t *testing.T) {
			dir := t.TempDir()
			var probes int
			testHookCreated = func(path string) {
				probes++
				if probes > 1 {
					return // the retry is left alone
				}
				f, err := os.OpenFile(path, os.O_RDWR, 0)
				if err != nil {
					t.Error(err)
					return
				}
				if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
					t.Error(err)
				}
				// Released once Acquire is (or is about to be) waiting.
				go func() {
					time.Sleep(50 * time.Millisecond)
					if remove {
						os.Remove(path)
					}
					f.Close()
				}()
			}
			defer func() { testHookCreated = nil }()
			l, err := Acquire(dir)
			if err != nil {
				t.Fatalf("Acquire: %v", err)
			}
			defer l.Release()
			if live, _ := Live(dir); !slices.Equal(live, []string{l.Boot}) {
				t.Errorf("live %v, want [%s]", live, l.Boot)
			}
			if want := map[bool]int{false: 1, true: 2}[remove]; probes != want {
				t.Errorf("%d files created, want %d", probes, want)
			}
		})
	}
}
