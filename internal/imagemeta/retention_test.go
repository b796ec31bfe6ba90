package imagemeta

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// copyFixture copies testdata/repository into a new directory.
func copyFixture(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	must(t, os.CopyFS(dst, os.DirFS(fixtureRepo)))
	return dst
}

// repoFiles lists every regular file below dir but the lock, relative and
// slash-separated.
func repoFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	must(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel != LockFile {
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	}))
	sort.Strings(out)
	return out
}

// sha256sumCheck runs `sha256sum --strict -c SHA256SUMS` in dir.
func sha256sumCheck(t *testing.T, dir string) {
	t.Helper()
	bin, err := exec.LookPath("sha256sum")
	if err != nil {
		t.Fatalf("sha256sum (GNU coreutils) is needed: %v", err)
	}
	cmd := exec.Command(bin, "--strict", "-c", SumsFile)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c: %v\n%s", err, out)
	}
}

func addFile(t *testing.T, dir, rel, content string) string {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(content), 0o644))
	return sumHex(content)
}

func TestKeepLast(t *testing.T) {
	dir := copyFixture(t)
	r, warnings := newRepo(t, dir)
	sum := addFile(t, dir, "node/20260106/node.qcow2", "new image\n")
	e := IndexEntry{Name: "node", Labels: map[string]string{"stage": "prod"}, Created: time.Date(2026, 1, 6, 10, 0, 0, 0, time.UTC)}
	removed, err := r.AddKeepLast(e, sum, "node/20260106/node.qcow2", 2)
	if err != nil {
		t.Fatal(err)
	}
	// Same name and the same label set only: stage=dev and the image with
	// an extra label stay. Of the four stage=prod images the newest, of the
	// two that finished together the greater path, stays with the new one.
	var got []string
	for _, rm := range removed {
		got = append(got, fmt.Sprintf("%s files=%v dirs=%v", rm.Entry.Path, rm.Files, rm.Dirs))
	}
	sort.Strings(got)
	want := []string{
		"node/20260101/node.qcow2 files=[node/20260101/node.qcow2 node/20260101/node.qcow2.metadata.json] dirs=[node/20260101]",
		"node/20260102/node.qcow2 files=[node/20260102/node.qcow2 node/20260102/node.qcow2.cdx.json node/20260102/node.qcow2.metadata.json] dirs=[node/20260102]",
		"node/20260103-a/node.qcow2 files=[node/20260103-a/node.qcow2 node/20260103-a/node.qcow2.metadata.json] dirs=[]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("removed:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	keptImages := []string{"base/b1/base.qcow2", "node/20260103-b/node.qcow2", "node/20260104/node.qcow2", "node/20260105/node.qcow2", "node/20260106/node.qcow2"}
	checkConsistent(t, dir, slices.Clone(keptImages))
	sha256sumCheck(t, dir)
	wantFiles := []string{SumsFile, "base/b1/base.qcow2", IndexFile,
		"node/20260103-a/NOTES", // not the image's: the directory stays
		"node/20260103-b/node.qcow2", "node/20260103-b/node.qcow2.metadata.json",
		"node/20260104/node.qcow2", "node/20260104/node.qcow2.metadata.json",
		"node/20260105/node.qcow2", "node/20260105/node.qcow2.metadata.json",
		"node/20260106/node.qcow2"}
	sort.Strings(wantFiles)
	if got := repoFiles(t, dir); !slices.Equal(got, wantFiles) {
		t.Errorf("files left:\n%v\nwant\n%v", got, wantFiles)
	}
	if l := readIndexT(t, dir).Latest; l["node"] != "node/20260106/node.qcow2" || l["base"] != "base/b1/base.qcow2" {
		t.Errorf("latest = %v", l)
	}
	if w := warnings(); len(w) != 0 {
		t.Errorf("warnings: %v", w)
	}

	// keep_last = 1 with an image that finished before the others: it is
	// the one just added, so it stays, alone of its label set.
	sum = addFile(t, dir, "late/node.qcow2", "late\n")
	e.Created = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	removed, err = r.AddKeepLast(e, sum, "late/node.qcow2", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 2 || removed[0].Entry.Path != "node/20260103-b/node.qcow2" || removed[1].Entry.Path != "node/20260106/node.qcow2" {
		t.Errorf("removed %+v, want 20260103-b and 20260106", removed)
	}
	checkConsistent(t, dir, []string{"base/b1/base.qcow2", "late/node.qcow2", "node/20260104/node.qcow2", "node/20260105/node.qcow2"})
	sha256sumCheck(t, dir)
	if _, err := os.Stat(filepath.Join(dir, "node")); err != nil {
		t.Errorf("node/ still holds images but: %v", err)
	}
}

// keepLast 0 keeps everything; a re-added image is not its own rival; a
// file another image lists, and a path that escapes the repository, are
// never deleted.
func TestKeepLastEdges(t *testing.T) {
	dir := copyFixture(t)
	r, warnings := newRepo(t, dir)
	before := repoFiles(t, dir)
	sum := addFile(t, dir, "node/20260106/node.qcow2", "new image\n")
	if rm, err := r.AddKeepLast(IndexEntry{Name: "node", Labels: map[string]string{"stage": "prod"}}, sum, "node/20260106/node.qcow2", 0); err != nil || rm != nil {
		t.Fatalf("keepLast 0: %v, %v", rm, err)
	}
	if got := repoFiles(t, dir); len(got) != len(before)+1 {
		t.Errorf("keepLast 0 deleted files: %v", got)
	}

	// base shares a file with a node image, and a hand-edited entry points
	// outside the repository.
	outside := filepath.Join(t.TempDir(), "victim")
	must(t, os.WriteFile(outside, []byte("x"), 0o644))
	shared := addFile(t, dir, "shared.json", "{}")
	sb := IndexEntry{Name: "base", Sidecars: []Sidecar{{Kind: SidecarSPDX, Path: "shared.json", SHA256: shared}}}
	must(t, r.Add(sb, sumHex("image base/b1/base.qcow2\n"), "base/b1/base.qcow2"))
	idx := readIndexT(t, dir)
	for i, e := range idx.Images {
		if e.Path == "node/20260101/node.qcow2" {
			idx.Images[i].Sidecars = []Sidecar{{Kind: SidecarSPDX, Path: "shared.json", SHA256: shared}, {Kind: SidecarProvenance, Path: "../" + filepath.Base(filepath.Dir(outside)) + "/victim", SHA256: shared}}
		}
	}
	b, err := marshalCanonical(idx)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, IndexFile), b, 0o644))

	rm, err := r.AddKeepLast(IndexEntry{Name: "node", Labels: map[string]string{"stage": "prod"}}, sum, "node/20260106/node.qcow2", 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(rm) != 1 || rm[0].Entry.Path != "node/20260101/node.qcow2" || slices.Contains(rm[0].Files, "shared.json") {
		t.Errorf("removed %+v, want node/20260101 without shared.json", rm)
	}
	if _, err := os.Stat(filepath.Join(dir, "shared.json")); err != nil {
		t.Errorf("the file base still lists was deleted: %v", err)
	}
	if _, err := os.Stat(outside); err != nil {
		t.Errorf("a file outside the repository was deleted: %v", err)
	}
	if w := warnings(); len(w) != 1 || !strings.Contains(w[0], "outside the repository") {
		t.Errorf("warnings %q, want one about the path outside the repository", w)
	}
	sha256sumCheck(t, dir)
}

const keepHelperEnv = "IMAGEMETA_KEEP_HELPER"

// TestKeepLastHelperProcess is the child of TestKeepLastConcurrentProcesses;
// it does nothing in a normal run. It adds 10 images with keepLast 3 from
// 5 goroutines and prints "removed <path>" for each image it removed.
func TestKeepLastHelperProcess(t *testing.T) {
	spec := os.Getenv(keepHelperEnv)
	if spec == "" {
		return
	}
	dir, id, _ := strings.Cut(spec, "|")
	var mu sync.Mutex
	var wg sync.WaitGroup
	jobs := make(chan int)
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				p := fmt.Sprintf("p%s-%02d/img.qcow2", id, i)
				sum := addFile(t, dir, p, p)
				addFile(t, dir, p+".metadata.json", "{}")
				rm, err := (&Repo{Dir: dir}).AddKeepLast(IndexEntry{Name: "node", Labels: map[string]string{"stage": "prod"}}, sum, p, 3)
				if err != nil {
					t.Error(err)
					continue
				}
				mu.Lock()
				for _, r := range rm {
					fmt.Printf("removed %s\n", r.Entry.Path)
				}
				mu.Unlock()
			}
		}()
	}
	for i := range 10 {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
}

// Two processes add images of one name and label set with keepLast 3 at
// the same time: each image is removed by exactly one of them, exactly
// three stay, no file of a removed image is left, and SHA256SUMS checks.
func TestKeepLastConcurrentProcesses(t *testing.T) {
	if os.Getenv(keepHelperEnv) != "" {
		return
	}
	dir := t.TempDir()
	removed := map[string]int{}
	for _, out := range runChildren(t, "TestKeepLastHelperProcess", keepHelperEnv, dir, 2) {
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			if p, ok := strings.CutPrefix(sc.Text(), "removed "); ok {
				removed[p]++
			}
		}
	}
	idx := readIndexT(t, dir)
	var kept []string
	for _, e := range idx.Images {
		kept = append(kept, e.Path)
	}
	if len(kept) != 3 {
		t.Errorf("%d images left, want 3: %v", len(kept), kept)
	}
	for p, n := range removed {
		if n != 1 {
			t.Errorf("%s removed %d times", p, n)
		}
	}
	if len(removed)+len(kept) != 20 {
		t.Errorf("%d removed + %d kept, want 20 images in all", len(removed), len(kept))
	}
	checkConsistent(t, dir, kept)
	sha256sumCheck(t, dir)
	want := []string{IndexFile, SumsFile}
	for _, p := range kept {
		want = append(want, p, p+".metadata.json")
	}
	sort.Strings(want)
	if got := repoFiles(t, dir); !slices.Equal(got, want) {
		t.Errorf("files:\n%v\nwant\n%v", got, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2+3+1 { // index, sums, lock and the kept images' directories
		t.Errorf("%d entries in the repository, want 6 (empty directories left?)", len(entries))
	}
}
