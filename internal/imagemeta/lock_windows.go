//go:build windows

package imagemeta

import (
	"os"

	"golang.org/x/sys/windows"
)

// lockRepo takes an exclusive LockFileEx lock on the first byte of the lock
// file at path, creating it, and blocks until it is granted. Like flock on
// Unix the lock belongs to the handle, so goroutines and processes exclude
// each other, and Windows releases it when the process exits.
func lockRepo(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	h := windows.Handle(f.Fd())
	ol := new(windows.Overlapped)
	if err := windows.LockFileEx(h, windows.LOCKFILE_EXCLUSIVE_LOCK, 0, 1, 0, ol); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "LockFileEx", Path: path, Err: err}
	}
	return func() {
		windows.UnlockFileEx(h, 0, 1, 0, ol)
		f.Close()
	}, nil
}
