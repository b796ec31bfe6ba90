package imagemeta

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func sumHex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// newRepo returns a Repo whose warnings are collected.
func newRepo(t *testing.T, dir string) (*Repo, func() []string) {
	var mu sync.Mutex
	var warnings []string
	r := &Repo{Dir: dir, Warn: func(m string) {
		mu.Lock()
		warnings = append(warnings, m)
		mu.Unlock()
	}}
	return r, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), warnings...)
	}
}

func readIndexT(t *testing.T, dir string) *Index {
	t.Helper()
	idx, err := (&Repo{Dir: dir}).ReadIndex()
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// checkConsistent verifies that index.json and SHA256SUMS list exactly
// wantPaths, in sorted order.
func checkConsistent(t *testing.T, dir string, wantPaths []string) {
	t.Helper()
	sort.Strings(wantPaths)
	idx := readIndexT(t, dir)
	var got []string
	for _, e := range idx.Images {
		got = append(got, e.Path)
	}
	if strings.Join(got, "\n") != strings.Join(wantPaths, "\n") {
		t.Errorf("index paths = %v\nwant %v", got, wantPaths)
	}
	b, err := os.ReadFile(filepath.Join(dir, SumsFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != len(wantPaths) {
		t.Fatalf("SHA256SUMS has %d lines, want %d", len(lines), len(wantPaths))
	}
	for i, l := range lines {
		if l[64:66] != "  " || l[66:] != wantPaths[i] {
			t.Errorf("SHA256SUMS line %d = %q, want path %q", i, l, wantPaths[i])
		}
		if e := idx.Images[i]; e.Checksums["sha256"] != l[:64] {
			t.Errorf("%s: index sha256 %s, SHA256SUMS %s", e.Path, e.Checksums["sha256"], l[:64])
		}
	}
}

func TestRepoGolden(t *testing.T) {
	dir := t.TempDir()
	r, warnings := newRepo(t, dir)
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	adds := []struct {
		name, path, content string
		created             time.Time
		labels              map[string]string
	}{
		{"debian-12", "debian-12/20250301.qcow2", "a", t0, map[string]string{"channel": "stable"}},
		{"debian-12", "debian-12/20250302.qcow2", "b", t0.Add(24 * time.Hour), nil},
		{"alpine", "alpine/3.21.raw", "c", t0.Add(time.Hour), nil},
		{"debian-12", "debian-12/20250228.qcow2", "d", t0.Add(-24 * time.Hour), nil},
	}
	for _, a := range adds {
		e := IndexEntry{Name: a.name, Labels: a.labels, Size: int64(len(a.content)), Created: a.created,
			Checksums: map[string]string{"sha512": strings.Repeat("0", 128)}}
		if err := r.Add(e, sumHex(a.content), a.path); err != nil {
			t.Fatal(err)
		}
	}
	if w := warnings(); len(w) != 0 {
		t.Errorf("warnings: %v", w)
	}
	idx, _ := os.ReadFile(filepath.Join(dir, IndexFile))
	checkGolden(t, "index.json", idx)
	sums, _ := os.ReadFile(filepath.Join(dir, SumsFile))
	checkGolden(t, "SHA256SUMS", sums)
	ix := readIndexT(t, dir)
	if ix.Latest["debian-12"] != "debian-12/20250302.qcow2" || ix.Latest["alpine"] != "alpine/3.21.raw" {
		t.Errorf("latest = %v", ix.Latest)
	}
}

func TestRepoSha256sumCheck(t *testing.T) {
	sha256sum, err := exec.LookPath("sha256sum")
	if err != nil {
		t.Skip("sha256sum not installed")
	}
	dir := filepath.Join(t.TempDir(), "repo", "nested") // created by Add
	r, _ := newRepo(t, dir)
	files := map[string]string{
		"a.raw":               "raw image",
		"debian/disk 1.qcow2": "with a space",
		"debian/x/y/deep.img": strings.Repeat("z", 100000),
		"back\\slash.img":     "escaped name",
		"z-last.img":          "",
	}
	var paths []string
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		sums, size, err := HashFile(p, []string{"sha256", "sha512"})
		if err != nil {
			t.Fatal(err)
		}
		// Absolute paths inside the repository are accepted too.
		arg := rel
		if strings.HasPrefix(rel, "debian/") {
			arg = p
		}
		if err := r.Add(IndexEntry{Name: "img", Size: size, Checksums: sums}, sums["sha256"], arg); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, rel)
	}
	cmd := exec.Command(sha256sum, "--strict", "-c", SumsFile)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	// Tamper with one image: the check must now fail.
	os.WriteFile(filepath.Join(dir, "a.raw"), []byte("tampered"), 0o644)
	cmd = exec.Command(sha256sum, "--strict", "-c", SumsFile)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("sha256sum -c passed on a tampered image:\n%s", out)
	}
	sums, err := (&Repo{Dir: dir}).readSums()
	if err != nil || len(sums) != len(files) || sums["back\\slash.img"] != sumHex("escaped name") {
		t.Errorf("reading back SHA256SUMS: %v %v", sums, err)
	}
	_ = paths
}

func TestRepoReplaceSamePath(t *testing.T) {
	dir := t.TempDir()
	r, _ := newRepo(t, dir)
	old := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	must(t, r.Add(IndexEntry{Name: "n", Created: old, Labels: map[string]string{"v": "1"}}, sumHex("v1"), "img/a.qcow2"))
	must(t, r.Add(IndexEntry{Name: "n", Created: old.Add(time.Hour)}, sumHex("other"), "img/b.qcow2"))
	must(t, r.Add(IndexEntry{Name: "n", Created: old.Add(2 * time.Hour), Labels: map[string]string{"v": "2"}}, sumHex("v2"), "./img//a.qcow2"))
	checkConsistent(t, dir, []string{"img/a.qcow2", "img/b.qcow2"})
	idx := readIndexT(t, dir)
	a := idx.Images[0]
	if a.Checksums["sha256"] != sumHex("v2") || a.Labels["v"] != "2" || a.ID != "sha256:"+sumHex("v2") {
		t.Errorf("replaced entry = %+v", a)
	}
	if idx.Latest["n"] != "img/a.qcow2" {
		t.Errorf("latest = %v", idx.Latest)
	}
}

func TestRepoDuplicatePathsInExistingIndex(t *testing.T) {
	dir := t.TempDir()
	dup := `{"schema_version":1,"images":[
		{"name":"n","path":"a.img","id":"1","checksums":{"sha256":"` + sumHex("1") + `"},"size":1,"created":"2025-01-01T00:00:00Z"},
		{"name":"n","path":"a.img","id":"2","checksums":{"sha256":"` + sumHex("2") + `"},"size":2,"created":"2025-01-02T00:00:00Z"}],
		"latest":{}}`
	os.WriteFile(filepath.Join(dir, IndexFile), []byte(dup), 0o644)
	os.WriteFile(filepath.Join(dir, SumsFile), []byte(sumHex("2")+"  a.img\n"), 0o644)
	r, warnings := newRepo(t, dir)
	must(t, r.Add(IndexEntry{Name: "n"}, sumHex("b"), "b.img"))
	checkConsistent(t, dir, []string{"a.img", "b.img"})
	if idx := readIndexT(t, dir); idx.Images[0].ID != "2" {
		t.Errorf("kept %+v, want the last duplicate", idx.Images[0])
	}
	if w := warnings(); len(w) != 0 {
		t.Errorf("warnings: %v", w)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestRepoCorruptIndex(t *testing.T) {
	for name, content := range map[string]string{
		"garbage":       "{\"schema_version\": 1, \"images\": [",
		"no schema":     "{}",
		"wrong type":    "[1,2,3]",
		"entry no path": `{"schema_version":1,"images":[{"name":"x"}],"latest":{}}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, IndexFile), []byte(content), 0o644)
			r, warnings := newRepo(t, dir)
			must(t, r.Add(IndexEntry{Name: "n"}, sumHex("x"), "x.img"))
			checkConsistent(t, dir, []string{"x.img"})
			w := warnings()
			if len(w) != 1 || !strings.Contains(w[0], "corrupt") || !strings.Contains(w[0], IndexFile+corruptInfix) {
				t.Errorf("warnings = %v", w)
			}
			m, _ := filepath.Glob(filepath.Join(dir, IndexFile+corruptInfix+"*"))
			if len(m) != 1 {
				t.Fatalf("corrupt copies: %v", m)
			}
			suffix := strings.TrimPrefix(filepath.Base(m[0]), IndexFile+corruptInfix)
			if _, err := time.Parse("20060102T150405Z", suffix); err != nil {
				t.Errorf("corrupt copy suffix %q: %v", suffix, err)
			}
			if b, _ := os.ReadFile(m[0]); string(b) != content {
				t.Errorf("corrupt copy content = %q", b)
			}
			// A second corruption in the same second must not clobber the first copy.
			os.WriteFile(filepath.Join(dir, IndexFile), []byte("again"), 0o644)
			must(t, r.Add(IndexEntry{Name: "n"}, sumHex("y"), "y.img"))
			m, _ = filepath.Glob(filepath.Join(dir, IndexFile+corruptInfix+"*"))
			if len(m) != 2 {
				t.Errorf("corrupt copies after a second corruption: %v", m)
			}
		})
	}
}

func TestRepoNewerSchemaRefused(t *testing.T) {
	dir := t.TempDir()
	newer := `{"schema_version":2,"images":[],"latest":{}}`
	os.WriteFile(filepath.Join(dir, IndexFile), []byte(newer), 0o644)
	r, _ := newRepo(t, dir)
	err := r.Add(IndexEntry{Name: "n"}, sumHex("x"), "x.img")
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("err = %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, IndexFile)); string(b) != newer {
		t.Error("newer index was modified")
	}
}

func TestRepoMalformedSums(t *testing.T) {
	dir := t.TempDir()
	good := sumHex("keep") + "  keep.img\n" + sumHex("bin") + " *binary.img\n"
	os.WriteFile(filepath.Join(dir, SumsFile), []byte(good+"this is not a checksum line\n\n"), 0o644)
	r, warnings := newRepo(t, dir)
	must(t, r.Add(IndexEntry{Name: "n"}, sumHex("new"), "new.img"))
	b, _ := os.ReadFile(filepath.Join(dir, SumsFile))
	want := sumHex("bin") + "  binary.img\n" + sumHex("keep") + "  keep.img\n" + sumHex("new") + "  new.img\n"
	if string(b) != want {
		t.Errorf("SHA256SUMS =\n%s\nwant\n%s", b, want)
	}
	if w := warnings(); len(w) != 1 || !strings.Contains(w[0], "malformed") {
		t.Errorf("warnings = %v", w)
	}
}

func TestRepoRejectsBadInput(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "repo")
	r, _ := newRepo(t, dir)
	for _, p := range []string{"../x.img", "a/../../x.img", filepath.Join(base, "other", "x.img"), "", ".", "a/..", IndexFile, SumsFile, LockFile} {
		err := r.Add(IndexEntry{Name: "n"}, sumHex("x"), p)
		if err == nil {
			t.Errorf("Add(%q): want error", p)
		}
	}
	err := r.Add(IndexEntry{Name: "n"}, sumHex("x"), "../x.img")
	if err == nil || !strings.Contains(err.Error(), "must be inside the repository") {
		t.Errorf("outside error should explain: %v", err)
	}
	if err := r.Add(IndexEntry{}, sumHex("x"), "x.img"); err == nil {
		t.Error("no name: want error")
	}
	if err := r.Add(IndexEntry{Name: "n"}, "abc", "x.img"); err == nil {
		t.Error("bad digest: want error")
	}
	if err := r.Add(IndexEntry{Name: "n", Checksums: map[string]string{"sha256": sumHex("y")}}, sumHex("x"), "x.img"); err == nil {
		t.Error("conflicting sha256: want error")
	}
	if _, err := os.Stat(dir); err == nil {
		t.Error("invalid Adds created the repository")
	}
}

func TestRepoUnwritable(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o644)
	dir := filepath.Join(file, "repo") // below a regular file: cannot be created
	err := (&Repo{Dir: dir}).Add(IndexEntry{Name: "n"}, sumHex("x"), "x.img")
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("err = %v, want it to name %s", err, dir)
	}
	if os.Geteuid() == 0 {
		return // root writes anywhere; the permission case cannot be shown
	}
	ro := filepath.Join(base, "ro")
	os.Mkdir(ro, 0o555)
	defer os.Chmod(ro, 0o755)
	err = (&Repo{Dir: ro}).Add(IndexEntry{Name: "n"}, sumHex("x"), "x.img")
	if err == nil || !strings.Contains(err.Error(), "not writable") || !strings.Contains(err.Error(), ro) {
		t.Errorf("read-only dir: err = %v", err)
	}
}

func TestRepoConcurrentGoroutines(t *testing.T) {
	dir := t.TempDir()
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	var want []string
	for i := range n {
		p := fmt.Sprintf("img/%02d.qcow2", i)
		want = append(want, p)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &Repo{Dir: dir} // a Repo per goroutine, as separate builds would have
			errs <- r.Add(IndexEntry{Name: fmt.Sprintf("n%d", i%5)}, sumHex(p), p)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	checkConsistent(t, dir, want)
	if l := readIndexT(t, dir).Latest; len(l) != 5 {
		t.Errorf("latest = %v", l)
	}
}

const helperEnv = "IMAGEMETA_REPO_HELPER"

// TestRepoHelperProcess is the child of TestRepoConcurrentProcesses; it
// does nothing in a normal run.
func TestRepoHelperProcess(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		return
	}
	dir, id, _ := strings.Cut(spec, "|")
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := fmt.Sprintf("p%s/%02d.img", id, i)
			if err := (&Repo{Dir: dir}).Add(IndexEntry{Name: "proc" + id}, sumHex(p), p); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

func TestRepoConcurrentProcesses(t *testing.T) {
	if os.Getenv(helperEnv) != "" {
		return
	}
	dir := t.TempDir()
	runChildren(t, "TestRepoHelperProcess", helperEnv, dir, 2)
	var want []string
	for id := range 2 {
		for i := range 20 {
			want = append(want, fmt.Sprintf("p%d/%02d.img", id, i))
		}
	}
	checkConsistent(t, dir, want)
	var idx Index
	b, _ := os.ReadFile(filepath.Join(dir, IndexFile))
	must(t, json.Unmarshal(b, &idx))
	if len(idx.Latest) != 2 {
		t.Errorf("latest = %v", idx.Latest)
	}
}

func TestRepoSidecars(t *testing.T) {
	dir := t.TempDir()
	r, _ := newRepo(t, dir)
	img := filepath.Join(dir, "b1", "node.qcow2")
	e := IndexEntry{Name: "node", Sidecars: []Sidecar{
		{Kind: SidecarProvenance, Path: "b1/node.qcow2.intoto.json", SHA256: strings.ToUpper(sumHex("prov"))},
		{Kind: SidecarMetadata, Path: img + ".metadata.json", SHA256: sumHex("meta")},
	}}
	if err := r.Add(e, sumHex("img"), img); err != nil {
		t.Fatal(err)
	}
	idx := readIndexT(t, dir)
	got := idx.Images[0].Sidecars
	want := []Sidecar{
		{Kind: SidecarProvenance, Path: "b1/node.qcow2.intoto.json", SHA256: sumHex("prov")},
		{Kind: SidecarMetadata, Path: "b1/node.qcow2.metadata.json", SHA256: sumHex("meta")},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("sidecars = %v\nwant %v", got, want)
	}
	sums, err := os.ReadFile(filepath.Join(dir, SumsFile))
	if err != nil {
		t.Fatal(err)
	}
	wantSums := sumHex("img") + "  b1/node.qcow2\n" + sumHex("prov") + "  b1/node.qcow2.intoto.json\n" + sumHex("meta") + "  b1/node.qcow2.metadata.json\n"
	if string(sums) != wantSums {
		t.Errorf("SHA256SUMS =\n%s\nwant\n%s", sums, wantSums)
	}

	// Registering the image again replaces its sidecars' lines too.
	e.Sidecars = []Sidecar{{Kind: SidecarMetadata, Path: "b1/node.qcow2.metadata.json", SHA256: sumHex("meta2")}}
	if err := r.Add(e, sumHex("img"), img); err != nil {
		t.Fatal(err)
	}
	sums, _ = os.ReadFile(filepath.Join(dir, SumsFile))
	if want := sumHex("img") + "  b1/node.qcow2\n" + sumHex("meta2") + "  b1/node.qcow2.metadata.json\n"; string(sums) != want {
		t.Errorf("after re-adding, SHA256SUMS =\n%s\nwant\n%s", sums, want)
	}

	for name, sc := range map[string]Sidecar{
		"outside":  {Kind: SidecarSPDX, Path: "../x.spdx.json", SHA256: sumHex("x")},
		"bad hash": {Kind: SidecarSPDX, Path: "b1/x.spdx.json", SHA256: "abc"},
		"image":    {Kind: SidecarSPDX, Path: "b1/node.qcow2", SHA256: sumHex("x")},
		"reserved": {Kind: SidecarSPDX, Path: SumsFile, SHA256: sumHex("x")},
	} {
		e := IndexEntry{Name: "node", Sidecars: []Sidecar{sc}}
		if err := r.Add(e, sumHex("img"), img); err == nil || !strings.Contains(err.Error(), "sidecar") {
			t.Errorf("%s: Add error %v, want one naming the sidecar", name, err)
		}
	}
}

// runChildren runs n copies of this test binary at once, each running only
// the test named helper with env set to "<dir>|<child number>", waits for
// all, fails the test for any that failed, and returns their combined
// outputs in child order.
func runChildren(t *testing.T, helper, env, dir string, n int) []string {
	t.Helper()
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	for id := range n {
		cmd := exec.Command(os.Args[0], "-test.run=^"+helper+"$", "-test.count=1")
		cmd.Env = append(os.Environ(), env+"="+dir+"|"+strconv.Itoa(id))
		out := new(strings.Builder)
		cmd.Stdout, cmd.Stderr = out, out
		must(t, cmd.Start())
		cmds = append(cmds, cmd)
		outs = append(outs, out)
	}
	res := make([]string, n)
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("child %d: %v\n%s", i, err, outs[i])
		}
		res[i] = outs[i].String()
	}
	return res
}
