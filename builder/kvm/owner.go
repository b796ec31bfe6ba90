package kvm

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/packer-plugin-sdk/filelock"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/lockfile"
)

// Work files and their owners.
//
// A build writes work files that are not outputs: its temporary directory
// (cloudimg-* in the system's temporary directory: seed, QMP socket, serial
// log, guest facts) and, beside the image in output_directory, the build
// disk (.NAME.building.qcow2), the UEFI variables (.NAME.efivars.building)
// and the conversion's output (.NAME.converting). A build that is killed
// (SIGKILL, the OOM killer, a CI runner cancelling the job) leaves them.
//
// Each has an owner record: a kernel file lock that the build holds for its
// whole life and that the kernel releases when the process ends, however it
// ends. A build removes, and names, the work files it finds whose lock it can
// take: their owner is dead. Files of a running build are locked and never
// touched.
//   - output_directory's files: the lock claiming the image's name
//     (claimPath), taken before any of them is made and given up after they
//     are gone.
//
// The claim and output_directory's own lock (dirLockPath) are files in the
// system's temporary directory (internal/lockfile): removed by their last
// holder when it releases them, with the inode check that keeps removal from
// breaking the exclusion, and — when a killed build left one — by the next
// build's sweep (sweepLockFiles), which removes only those nobody holds.
//   - the temporary directory: owner.lock inside it, locked under another
//     name and then renamed, so that a directory's owner.lock is locked from
//     the moment it exists (a directory without one is being made, or is not
//     ours: left alone).

const (
	buildingSuffix   = ".building.qcow2"
	efivarsSuffix    = ".efivars.building"
	convertingSuffix = ".converting"
	tempPrefix       = "cloudimg-"
	ownerLock        = "owner.lock"
)

var workSuffixes = []string{buildingSuffix, efivarsSuffix, convertingSuffix}

// workFile is the work file with suffix beside image: .NAME<suffix>.
func workFile(image, suffix string) string {
	return filepath.Join(filepath.Dir(image), "."+filepath.Base(image)+suffix)
}

// workFileImage is the image name that a work file in output_directory
// belongs to ("" when name is no work file).
func workFileImage(name string) string {
	if !strings.HasPrefix(name, ".") {
		return ""
	}
	for _, suf := range workSuffixes {
		if img := strings.TrimSuffix(name[1:], suf); len(img) < len(name)-1 && img != "" && img != "." && img != ".." {
			return img
		}
	}
	return ""
}

// claimPath is the lock file claiming image: in the temporary directory, like
// the SDK's port locks, so that output_directory holds nothing but outputs.
// The directory's symbolic links are resolved: two paths to one directory
// are one claim. The kernel releases the lock when the process dies; the
// file goes with its last release (internal/lockfile) or with
// sweepLockFiles.
func claimPath(image string) (string, error) {
	abs, err := filepath.Abs(image)
	if err != nil {
		return "", err
	}
	return lockFile("", resolvePath(abs)), nil
}

// dirLockPath is the lock file of output_directory dir: builds hold it
// shared while they use the directory (see stepOutputDir).
func dirLockPath(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	return lockFile("dir-", resolvePath(abs))
}

func lockFile(kind, path string) string {
	sum := sha256.Sum256([]byte(path))
	return filepath.Join(os.TempDir(), lockPrefix+kind+hex.EncodeToString(sum[:8])+".lock")
}

// lockPrefix starts the names of the claim and directory lock files.
const lockPrefix = "packer-cloudimg-"

// sweepLockFiles removes the claim and directory lock files in the system's
// temporary directory that nobody holds (their builds were killed) and
// returns how many.
func sweepLockFiles() (int, error) {
	removed, err := lockfile.Sweep(os.TempDir(), lockPrefix)
	return len(removed), err
}

// resolvePath resolves the symbolic links in the longest existing ancestor
// of the absolute path p, so that p resolves the same before and after its
// missing directories are made.
func resolvePath(p string) string {
	dir, rest := filepath.Dir(p), filepath.Base(p)
	for {
		if r, err := filepath.EvalSymlinks(dir); err == nil {
			return filepath.Join(r, rest)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return p
		}
		rest = filepath.Join(filepath.Base(dir), rest)
		dir = parent
	}
}

// claimImage tries to take image's claim: ok is false while another build
// holds it.
func claimImage(image string) (lock *lockfile.Lock, ok bool, err error) {
	path, err := claimPath(image)
	if err != nil {
		return nil, false, err
	}
	lock, ok, err = lockfile.TryLock(path)
	if err != nil {
		return nil, false, fmt.Errorf("lock file %s: %w", path, err)
	}
	return lock, ok, nil
}

// sweepOutputDir removes the work files in dir of builds that are gone and
// returns their names. own is the image whose claim the caller holds: its
// work files are stale by definition. Others are removed only when their
// image's claim can be taken (and it is given up again).
func sweepOutputDir(dir, own string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	byImage := map[string][]string{}
	for _, e := range ents {
		if img := workFileImage(e.Name()); img != "" && !e.IsDir() {
			byImage[img] = append(byImage[img], e.Name())
		}
	}
	var removed []string
	var errs []error
	for img, files := range byImage {
		if img != own {
			lock, ok, err := claimImage(filepath.Join(dir, img))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if !ok {
				continue // a running build's
			}
			defer lock.Unlock()
		}
		for _, f := range files {
			if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, f)
		}
	}
	sort.Strings(removed)
	return removed, errors.Join(errs...)
}

// makeTempDir makes the build's temporary directory in root (the system's
// temporary directory when empty) with its owner record, locked.
func makeTempDir(root string) (string, *filelock.Flock, error) {
	dir, err := os.MkdirTemp(root, tempPrefix)
	if err != nil {
		return "", nil, err
	}
	staging := filepath.Join(dir, ownerLock+".new")
	lock := filelock.New(staging)
	if ok, err := lock.TryLock(); err != nil || !ok {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("locking %s: %v", staging, err)
	}
	if err := os.Rename(staging, filepath.Join(dir, ownerLock)); err != nil {
		// Without its owner.lock the directory is never swept: safe.
		return dir, lock, nil
	}
	return dir, lock, nil
}

// sweepTempDirs removes the temporary directories in root (the system's
// temporary directory when empty) whose owner is gone and returns them.
func sweepTempDirs(root string) ([]string, error) {
	if root == "" {
		root = os.TempDir()
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), tempPrefix) {
			continue
		}
		dir := filepath.Join(root, e.Name())
		lockPath := filepath.Join(dir, ownerLock)
		if st, err := os.Lstat(lockPath); err != nil || !st.Mode().IsRegular() {
			continue // being made, or not a build's
		}
		lock := filelock.New(lockPath)
		ok, err := lock.TryLock()
		if err != nil || !ok {
			continue // a running build's (or not ours to judge)
		}
		err = os.RemoveAll(dir)
		lock.Unlock()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, dir)
	}
	return removed, errors.Join(errs...)
}
