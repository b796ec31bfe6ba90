//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package lockfile

import (
	"errors"
	"os"
	"syscall"
)

// removable: Unlock removes the lock file here.
const removable = true

func acquire(path string, exclusive, nonBlocking bool) (*Lock, bool, error) {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if nonBlocking {
		how |= syscall.LOCK_NB
	}
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, false, err
		}
		if err := flock(f, how); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, false, nil
			}
			return nil, false, &os.PathError{Op: "flock", Path: path, Err: err}
		}
		if same(f, path) {
			return &Lock{path: path, unlock: func() error {
				release(path, f)
				return f.Close()
			}}, true, nil
		}
		// Its last holder removed the file while this one waited for it (or
		// between the open and the lock): lock the file now at path.
		f.Close()
	}
}

// release removes path if nobody else holds the lock and path still names f.
// Taking the lock exclusively from a shared hold is not atomic (flock drops
// the shared lock first); someone may take it in between, and then the file
// stays for them to remove.
func release(path string, f *os.File) {
	if flock(f, syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		return
	}
	if same(f, path) {
		os.Remove(path)
	}
}

// same reports whether path names the file f is open on.
func same(f *os.File, path string) bool {
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	pi, err := os.Lstat(path)
	if err != nil {
		return false
	}
	return os.SameFile(fi, pi)
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			return err
		}
	}
}
