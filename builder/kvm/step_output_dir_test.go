package kvm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
)

// Four builds of one image name into one new directory (four sources from
// one source block without vm_name): one gets the name, the others fail
// saying why, without making, removing or emptying the directory that the
// first one works in.
func TestOutputDirParallelBuildsOfOneName(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "output")
	run := func(name string) (*stepOutputDir, multistep.StateBag, multistep.StepAction) {
		state := stepState(t, &Config{OutputDir: dir, VMName: name}, &fakeDriver{})
		s := &stepOutputDir{}
		return s, state, s.Run(context.Background(), state)
	}
	first, firstState, action := run("packer-node")
	if action != multistep.ActionContinue {
		t.Fatal(firstState.Get("error"))
	}
	disk := workFile(filepath.Join(dir, "packer-node"), buildingSuffix)
	touch(t, disk)
	for i := 0; i < 3; i++ {
		s, state, action := run("packer-node")
		if action != multistep.ActionHalt || !strings.Contains(state.Get("error").(error).Error(), "another build is writing") {
			t.Fatalf("build %d: %v", i+2, state.Get("error"))
		}
		state.Put(multistep.StateHalted, true)
		s.Cleanup(state)
	}
	if _, err := os.Stat(disk); err != nil {
		t.Fatalf("the running build's disk: %v", err)
	}
	first.Cleanup(firstState)
}

// A refused build makes no directory; a failed build that made it removes
// it only when no other build uses it.
func TestOutputDirRemovedOnlyWhenUnused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "output")
	run := func(name string) (*stepOutputDir, multistep.StateBag) {
		state := stepState(t, &Config{OutputDir: dir, VMName: name}, &fakeDriver{})
		s := &stepOutputDir{}
		if s.Run(context.Background(), state) != multistep.ActionContinue {
			t.Fatal(state.Get("error"))
		}
		return s, state
	}
	// Another build holds the name: a refused build makes no directory.
	lock, ok, err := claimImage(filepath.Join(dir, "taken"))
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	refused := &stepOutputDir{}
	refusedState := stepState(t, &Config{OutputDir: dir, VMName: "taken"}, &fakeDriver{})
	if refused.Run(context.Background(), refusedState) != multistep.ActionHalt {
		t.Fatal("the name was not refused")
	}
	refused.Cleanup(refusedState)
	lock.Unlock()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("a refused build made the directory: %v", err)
	}

	a, aState := run("a") // makes the directory
	b, bState := run("b") // uses it
	aState.Put(multistep.StateHalted, true)
	a.Cleanup(aState)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("a failed build removed the directory another build uses: %v", err)
	}
	b.Cleanup(bState) // b did not make it: the empty directory stays
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}

	c, cState := run("c")
	cState.Put(multistep.StateHalted, true)
	c.Cleanup(cState)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("a failed build alone left the empty directory it made: %v", err)
	}
}

// The claim of a name in a directory that does not exist yet is the claim
// of the same name once the directory is made, through symbolic links too.
func TestClaimBeforeAndAfterMkdir(t *testing.T) {
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(real, link); err != nil {
		t.Skip(err)
	}
	image := filepath.Join(link, "new", "sub", "vm")
	before, _ := claimPath(image)
	beforeDir := dirLockPath(filepath.Dir(image))
	if err := os.MkdirAll(filepath.Dir(image), 0o755); err != nil {
		t.Fatal(err)
	}
	after, _ := claimPath(image)
	viaReal, _ := claimPath(filepath.Join(real, "new", "sub", "vm"))
	if before != after || after != viaReal {
		t.Errorf("claims differ: before %s, after %s, through the real path %s", before, after, viaReal)
	}
	if beforeDir != dirLockPath(filepath.Dir(image)) {
		t.Error("the directory's lock differs before and after mkdir")
	}
}
