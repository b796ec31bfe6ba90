package kvm

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
)

func TestWorkFileImage(t *testing.T) {
	for name, want := range map[string]string{
		".vm.qcow2.building.qcow2":         "vm.qcow2",
		".vm.qcow2.efivars.building":       "vm.qcow2",
		".packer-x.converting":             "packer-x",
		".a.building.qcow2.building.qcow2": "a.building.qcow2",
		".vm,1 x.qcow2.building.qcow2":     "vm,1 x.qcow2",
		"vm.qcow2":                         "",
		"vm.qcow2.efivars.fd":              "",
		"vm.qcow2.building.qcow2":          "",
		".building.qcow2":                  "",
		".hidden":                          "",
		".vm.qcow2.building.qcow2.partial": "",
	} {
		if got := workFileImage(name); got != want {
			t.Errorf("workFileImage(%q) = %q, want %q", name, got, want)
		}
	}
}

func touch(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// A build removes the work files whose image nobody claims (their build is
// gone) and its own image's, never a running build's, nor outputs or other
// files.
func TestSweepOutputDir(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "live.qcow2")
	lock, ok, err := claimImage(live) // another build, running
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	defer lock.Unlock()
	touch(t,
		workFile(filepath.Join(dir, "dead.qcow2"), buildingSuffix),
		workFile(filepath.Join(dir, "dead.qcow2"), efivarsSuffix),
		workFile(filepath.Join(dir, "dead.qcow2"), convertingSuffix),
		workFile(live, buildingSuffix),
		workFile(live, efivarsSuffix),
		workFile(filepath.Join(dir, "mine.qcow2"), buildingSuffix),
		filepath.Join(dir, "done.qcow2"),
		filepath.Join(dir, "done.qcow2.efivars.fd"),
		filepath.Join(dir, ".hidden"),
	)
	removed, err := sweepOutputDir(dir, "mine.qcow2")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{".dead.qcow2.building.qcow2", ".dead.qcow2.converting", ".dead.qcow2.efivars.building", ".mine.qcow2.building.qcow2"}
	if !reflect.DeepEqual(removed, want) {
		t.Errorf("removed %q, want %q", removed, want)
	}
	left := []string{".hidden", ".live.qcow2.building.qcow2", ".live.qcow2.efivars.building", "done.qcow2", "done.qcow2.efivars.fd"}
	if got := names(t, dir); !reflect.DeepEqual(got, left) {
		t.Errorf("left %q, want %q", got, left)
	}
	// The sweep gave the dead build's claim up again.
	l, ok, err := claimImage(filepath.Join(dir, "dead.qcow2"))
	if err != nil || !ok {
		t.Errorf("dead.qcow2's claim is still held after the sweep: %v %v", ok, err)
	} else {
		l.Unlock()
	}
}

// One directory reached through a symbolic link is one claim.
func TestClaimThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Skip(err)
	}
	a, _ := claimPath(filepath.Join(dir, "vm"))
	b, _ := claimPath(filepath.Join(link, "vm"))
	if a != b {
		t.Errorf("claims differ: %s and %s", a, b)
	}
}

func TestSweepTempDirs(t *testing.T) {
	root := t.TempDir()
	live, liveLock, err := makeTempDir(root)
	if err != nil {
		t.Fatal(err)
	}
	defer liveLock.Unlock()
	if _, err := os.Stat(filepath.Join(live, ownerLock)); err != nil {
		t.Fatalf("no owner record: %v", err)
	}
	dead, deadLock, err := makeTempDir(root)
	if err != nil {
		t.Fatal(err)
	}
	touch(t, filepath.Join(dead, "serial.log"))
	deadLock.Unlock() // its process is gone
	// Being made (no owner.lock yet), or not a build's at all.
	for _, d := range []string{"cloudimg-new", "other"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := sweepTempDirs(root)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(removed, []string{dead}) {
		t.Errorf("removed %q, want %q", removed, []string{dead})
	}
	want := []string{filepath.Base(live), "cloudimg-new", "other"}
	sort.Strings(want)
	if got := names(t, root); !reflect.DeepEqual(got, want) {
		t.Errorf("left %q, want %q", got, want)
	}
}
