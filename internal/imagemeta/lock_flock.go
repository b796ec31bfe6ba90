//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package imagemeta

import (
	"os"
	"syscall"
)

// lockRepo takes an exclusive flock(2) on the lock file at path, creating
// it, and blocks until it is granted. flock locks belong to the open file
// description, so two goroutines of one process exclude each other just as
// two processes do, and the kernel releases the lock if the process dies.
// The lock file is never removed: removing it would let a waiter lock an
// unlinked file while a newcomer locks a new one.
func lockRepo(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, &os.PathError{Op: "flock", Path: path, Err: err}
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
