//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package lockfile

import (
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

func TestTryLockExcludesAndLeavesNothing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.lock")
	l, ok, err := TryLock(p)
	if err != nil || !ok {
		t.Fatalf("TryLock: %v %v", ok, err)
	}
	if _, ok, err := TryLock(p); ok || err != nil {
		t.Fatalf("second TryLock while held: ok=%v err=%v; want false, nil", ok, err)
	}
	if _, ok, _ := acquire(p, false, true); ok {
		t.Fatal("a shared lock was granted while the exclusive one is held")
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	if exists(p) {
		t.Error("the lock file is left after the last holder released it")
	}
	if err := l.Unlock(); err != nil {
		t.Errorf("second Unlock: %v", err)
	}
}

func TestSharedHoldersKeepTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "dir.lock")
	a, err := RLock(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := RLock(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := TryLock(p); ok {
		t.Fatal("exclusive lock granted under two shared holders")
	}
	a.Unlock()
	if !exists(p) {
		t.Fatal("the first shared holder removed the file the second still holds")
	}
	if _, ok, _ := TryLock(p); ok {
		t.Fatal("exclusive lock granted while a shared holder remains")
	}
	b.Unlock()
	if exists(p) {
		t.Error("the lock file is left after the last shared holder released it")
	}
}

// Many goroutines (each its own open file, as processes) take the lock in
// turn; each release removes the file under the waiters, who must then lock
// the new file, never the unlinked one: at most one may be inside at a time.
func TestExclusionSurvivesRemoval(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hot.lock")
	var inside, violations, entries atomic.Int32
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				var l *Lock
				if i%2 == 0 {
					var err error
					if l, err = LockExclusive(p); err != nil {
						t.Error(err)
						return
					}
				} else {
					var ok bool
					var err error
					if l, ok, err = TryLock(p); err != nil {
						t.Error(err)
						return
					} else if !ok {
						continue
					}
				}
				if inside.Add(1) != 1 {
					violations.Add(1)
				}
				entries.Add(1)
				runtime.Gosched() // widen the window for a second holder
				inside.Add(-1)
				l.Unlock()
			}
		}()
	}
	wg.Wait()
	if v := violations.Load(); v > 0 {
		t.Errorf("%d times two holders were inside at once", v)
	}
	if entries.Load() < 800 {
		t.Errorf("only %d entries: the blocking takers did not all get in", entries.Load())
	}
	if exists(p) {
		t.Error("the lock file is left after everyone released it")
	}
}

func TestSweep(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "x-stale.lock")
	os.WriteFile(stale, nil, 0o644) // as a killed process leaves it
	held := filepath.Join(dir, "x-held.lock")
	l, ok, err := TryLock(held)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	defer l.Unlock()
	other := filepath.Join(dir, "y-other.lock")
	os.WriteFile(other, nil, 0o644)
	removed, err := Sweep(dir, "x-")
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != stale || exists(stale) {
		t.Errorf("Sweep removed %v; want only %s", removed, stale)
	}
	if !exists(held) || !exists(other) {
		t.Error("Sweep removed a held lock or another prefix's file")
	}
}
