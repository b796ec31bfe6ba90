package imagemeta

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
)

// prune removes from idx and sums the images of added's name and label set
// beyond the newest keep (added itself always stays), and returns them with
// the files to delete. The caller holds the lock and deletes the files
// (deleteFiles) once the new index and SHA256SUMS are in place.
func (r *Repo) prune(idx *Index, sums map[string]string, added IndexEntry, keep int) []Removed {
	var others []IndexEntry
	for _, e := range idx.Images {
		if e.Path != added.Path && e.Name == added.Name && sameLabels(e.Labels, added.Labels) {
			others = append(others, e)
		}
	}
	if len(others) < keep {
		return nil
	}
	sort.Slice(others, func(i, j int) bool { return newer(others[i], others[j]) })
	drop := map[string]bool{}
	for _, e := range others[keep-1:] {
		drop[e.Path] = true
	}

	// Files the remaining images list are never deleted.
	inUse := map[string]bool{}
	kept := idx.Images[:0]
	var removed []Removed
	for _, e := range idx.Images {
		if drop[e.Path] {
			removed = append(removed, Removed{Entry: e})
			continue
		}
		kept = append(kept, e)
		inUse[e.Path] = true
		for _, sc := range e.Sidecars {
			inUse[sc.Path] = true
		}
	}
	idx.Images = kept
	idx.normalize()

	for i := range removed {
		e := removed[i].Entry
		files := []string{e.Path}
		for _, sc := range e.Sidecars {
			files = append(files, sc.Path)
		}
		files = append(files, e.Path+".metadata.json")
		seen := map[string]bool{}
		for _, f := range files {
			p, err := r.relPath(f) // a hand-edited index could point anywhere
			if err != nil {
				r.warn("not deleting %q of the removed image %s: %v", f, e.Path, err)
				continue
			}
			if seen[p] || inUse[p] {
				continue
			}
			seen[p] = true
			delete(sums, p)
			removed[i].candidates = append(removed[i].candidates, p)
		}
	}
	return removed
}

// deleteFiles deletes rm's candidate files and then the directories they
// leave empty, up to (not including) Dir, recording what it deleted.
// Failures are warnings: the index no longer lists the files.
func (r *Repo) deleteFiles(rm *Removed) {
	dirs := map[string]bool{}
	for _, p := range rm.candidates {
		err := os.Remove(filepath.Join(r.Dir, filepath.FromSlash(p)))
		switch {
		case err == nil:
			rm.Files = append(rm.Files, p)
		case errors.Is(err, fs.ErrNotExist):
		default:
			r.warn("could not delete %s of the removed image %s: %v", p, rm.Entry.Path, err)
		}
		if d := path.Dir(p); d != "." {
			dirs[d] = true
		}
	}
	// Deepest first, so that a parent left empty by its child goes too.
	var list []string
	for d := range dirs {
		for ; d != "."; d = path.Dir(d) {
			list = append(list, d)
		}
	}
	sort.Slice(list, func(i, j int) bool {
		return len(list[i]) > len(list[j]) || len(list[i]) == len(list[j]) && list[i] < list[j]
	})
	done := map[string]bool{}
	for _, d := range list {
		if done[d] {
			continue
		}
		done[d] = true
		// os.Remove deletes a directory only when it is empty.
		if err := os.Remove(filepath.Join(r.Dir, filepath.FromSlash(d))); err == nil {
			rm.Dirs = append(rm.Dirs, d)
		}
	}
	rm.candidates = nil
}
