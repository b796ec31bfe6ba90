// Package lockfile is an advisory file lock whose file is removed again when
// it is released and nobody else holds or waits on it, so that locks kept in
// a shared directory (the system's temporary directory) leave nothing behind.
//
// On Unix-like systems it is flock(2): the lock belongs to the open file, so
// two goroutines exclude each other as two processes do, and the kernel
// releases it when the process dies (its file then stays until Sweep or the
// next user of the path releases it). Removing a lock file is only safe with
// a matching acquire: a process that opened the file just before it was
// removed would lock an unlinked file while a newcomer locks a new one at the
// same path. So acquiring is: open (creating), lock, then check that the
// path still names the very file locked (same device and inode); if not, its
// holder removed it meanwhile, and the acquirer starts again. Releasing is:
// take the lock exclusively without waiting (nobody else holds it), remove
// the path if it still names this file, close. A waiter blocked on the old
// file wakes up, sees that the path is gone or is another file, and retries.
//
// Elsewhere (Windows and others) the lock is github.com/gofrs/flock's and
// the file is not removed.
package lockfile

import (
	"os"
	"path/filepath"
	"strings"
)

// Lock is a held lock on the file at a path. The zero value and nil hold
// nothing; Unlock is then a no-op.
type Lock struct {
	path   string
	unlock func() error
}

// TryLock takes an exclusive lock on path without waiting, creating the file
// (mode 0644) if needed. ok is false, with a nil error, when someone else
// holds it; errors name the path.
func TryLock(path string) (l *Lock, ok bool, err error) {
	return acquire(path, true, true)
}

// LockExclusive takes an exclusive lock on path, waiting as long as it takes.
func LockExclusive(path string) (*Lock, error) {
	l, _, err := acquire(path, true, false)
	return l, err
}

// RLock takes a shared lock on path, waiting while someone holds it
// exclusively. Shared holders do not exclude each other.
func RLock(path string) (*Lock, error) {
	l, _, err := acquire(path, false, false)
	return l, err
}

// Path is the lock file's path.
func (l *Lock) Path() string {
	if l == nil {
		return ""
	}
	return l.path
}

// Unlock releases the lock and removes its file when no one else holds it
// (see the package documentation). It returns the error of closing the file.
func (l *Lock) Unlock() error {
	if l == nil || l.unlock == nil {
		return nil
	}
	u := l.unlock
	l.unlock = nil
	return u()
}

// Sweep removes the lock files in dir whose names start with prefix and end
// in ".lock" that nobody holds (left by processes that were killed), and
// returns their paths. A held one is left alone.
func Sweep(dir, prefix string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(n, prefix) || !strings.HasSuffix(n, ".lock") {
			continue
		}
		p := filepath.Join(dir, n)
		l, ok, err := TryLock(p)
		if err != nil || !ok {
			continue
		}
		if removable {
			removed = append(removed, p)
		}
		l.Unlock()
	}
	return removed, nil
}
