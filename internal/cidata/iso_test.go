package cidata

import (
	"bytes"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func fullSeed(t *testing.T) *Seed {
	t.Helper()
	c := baseConfig()
	c.UserData = readTestdata(t, "user-data-merged.input.yaml")
	c.VendorData = []byte("#cloud-config\nbootcmd: [echo vendor]\n")
	s := mustBuild(t, c)
	if len(s.Files()) != 4 {
		t.Fatalf("want all four files, have %v", slices.Sorted(maps.Keys(s.Files())))
	}
	return s
}

// isolateTemp points TMPDIR at an empty directory and checks that it is
// empty again at the end (go-diskfs's workspace is removed).
func isolateTemp(t *testing.T) {
	t.Helper()
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	t.Cleanup(func() {
		if left := dirNames(t, tmp); len(left) > 0 {
			t.Errorf("left in TMPDIR: %v", left)
		}
	})
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func checkRoundTrip(t *testing.T, path string, want map[string][]byte) {
	t.Helper()
	label, got, err := readISO(path)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	if label != VolumeLabel {
		t.Errorf("volume label %q, want %q", label, VolumeLabel)
	}
	if !maps.EqualFunc(got, want, bytes.Equal) {
		t.Errorf("files read back: %v, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
		for name, b := range want {
			if !bytes.Equal(got[name], b) {
				t.Errorf("%s: got %q, want %q", name, got[name], b)
			}
		}
	}
	files, err := ReadISO(path)
	if err != nil || len(files) != len(want) {
		t.Errorf("ReadISO: %d files, %v", len(files), err)
	}
}

func TestISORoundTrip(t *testing.T) {
	isolateTemp(t)
	s := fullSeed(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "seed.iso")
	if err := s.WriteISO(path); err != nil {
		t.Fatal(err)
	}
	checkRoundTrip(t, path, s.Files())

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size()%isoBlockSize != 0 || fi.Size() > 128*1024 {
		t.Errorf("ISO size %d: want a small multiple of %d", fi.Size(), isoBlockSize)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("ISO mode %v, want 0644", fi.Mode())
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"seed.iso"}) {
		t.Errorf("directory holds %v, want only seed.iso", names)
	}
}

func TestISOMinimalAndLarge(t *testing.T) {
	isolateTemp(t)
	c := baseConfig()
	c.MAC = ""
	s := mustBuild(t, c)
	path := filepath.Join(t.TempDir(), "seed.iso")
	if err := s.WriteISO(path); err != nil {
		t.Fatal(err)
	}
	checkRoundTrip(t, path, map[string][]byte{FileUserData: s.UserData, FileMetaData: s.MetaData})

	// Larger than the first size estimate's slack, odd length, and an
	// empty file.
	big := bytes.Repeat([]byte("0123456789abcdef"), 300_000)
	big = append(big, 'x')
	files := map[string][]byte{FileUserData: s.UserData, FileMetaData: {}, FileVendorData: big}
	if err := writeISO(path, files); err != nil {
		t.Fatal(err)
	}
	checkRoundTrip(t, path, files)
}

func TestISOReplacesExistingFile(t *testing.T) {
	isolateTemp(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "seed.iso")
	// Larger than the new image, so a write in place would leave a tail.
	if err := os.WriteFile(path, bytes.Repeat([]byte("junk"), 100_000), 0o600); err != nil {
		t.Fatal(err)
	}
	s := fullSeed(t)
	if err := s.WriteISO(path); err != nil {
		t.Fatal(err)
	}
	checkRoundTrip(t, path, s.Files())
	if fi, _ := os.Stat(path); fi.Size() >= 400_000 {
		t.Errorf("old content left: size %d", fi.Size())
	}
	// Twice in a row, relative path.
	t.Chdir(dir)
	if err := s.WriteISO("seed.iso"); err != nil {
		t.Fatal(err)
	}
	checkRoundTrip(t, path, s.Files())
	if names := dirNames(t, dir); !slices.Equal(names, []string{"seed.iso"}) {
		t.Errorf("directory holds %v", names)
	}
}

func TestISOWriteErrors(t *testing.T) {
	isolateTemp(t)
	s := fullSeed(t)
	dir := t.TempDir()
	if err := s.WriteISO(filepath.Join(dir, "missing", "seed.iso")); err == nil {
		t.Error("no error for a missing directory")
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteISO(sub); err == nil {
		t.Error("no error for a path that is a directory")
	}
	if err := s.WriteISO(sub + "/"); err == nil {
		t.Error("no error for a path ending in /")
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"sub"}) {
		t.Errorf("left behind: %v", names)
	}
	if names := dirNames(t, sub); len(names) != 0 {
		t.Errorf("left behind in sub: %v", names)
	}
	if _, err := ReadISO(filepath.Join(dir, "nope.iso")); err == nil {
		t.Error("ReadISO of a missing file: no error")
	}
}

// TestISOTools checks the image with the tools of genisoimage (isoinfo),
// and with xorriso and blkid when present. Without isoinfo it skips, unless
// CLOUDIMG_REQUIRE_ISOINFO is set (make test sets it): then it fails.
func TestISOTools(t *testing.T) {
	if _, err := exec.LookPath("isoinfo"); err != nil {
		msg := "isoinfo not found on PATH: install genisoimage (apt-get install genisoimage) to check the seed ISO with real tools"
		if os.Getenv("CLOUDIMG_REQUIRE_ISOINFO") != "" {
			t.Fatal(msg + " (CLOUDIMG_REQUIRE_ISOINFO is set)")
		}
		t.Skip(msg)
	}
	isolateTemp(t)
	s := fullSeed(t)
	path := filepath.Join(t.TempDir(), "seed.iso")
	if err := s.WriteISO(path); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	names := slices.Sorted(maps.Keys(s.Files()))

	info := run("isoinfo", "-d", "-i", path)
	for _, want := range []string{"Volume id: cidata\n", "Rock Ridge signatures", "Joliet with UCS level"} {
		if !strings.Contains(info, want) {
			t.Errorf("isoinfo -d lacks %q:\n%s", want, info)
		}
	}
	for _, mode := range []string{"-R", "-J"} {
		listing := run("isoinfo", mode, "-l", "-i", path)
		for _, name := range names {
			if !strings.Contains(listing, " "+name+" \n") {
				t.Errorf("isoinfo %s -l lacks %s:\n%s", mode, name, listing)
			}
		}
		for _, name := range names {
			if got := run("isoinfo", mode, "-x", "/"+name, "-i", path); got != string(s.Files()[name]) {
				t.Errorf("isoinfo %s -x /%s: got %q", mode, name, got)
			}
		}
	}

	if _, err := exec.LookPath("xorriso"); err == nil {
		out := run("xorriso", "-indev", path, "-ls")
		for _, name := range names {
			if !strings.Contains(out, "'"+name+"'") {
				t.Errorf("xorriso -ls lacks %s:\n%s", name, out)
			}
		}
	} else {
		t.Log("xorriso not found; not checked with it")
	}
	// cloud-init finds the seed with blkid -t LABEL=cidata.
	if _, err := exec.LookPath("blkid"); err == nil {
		if out := strings.TrimSpace(run("blkid", "-p", "-o", "value", "-s", "LABEL", path)); out != VolumeLabel {
			t.Errorf("blkid label %q, want %q", out, VolumeLabel)
		}
	} else {
		t.Log("blkid not found; not checked with it")
	}
}
