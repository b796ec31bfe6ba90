//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package lockfile

import "github.com/gofrs/flock"

// removable: the lock files stay here (no inode check to make removal safe).
const removable = false

func acquire(path string, exclusive, nonBlocking bool) (*Lock, bool, error) {
	fl := flock.New(path)
	var ok bool
	var err error
	switch {
	case exclusive && nonBlocking:
		ok, err = fl.TryLock()
	case exclusive:
		err, ok = fl.Lock(), true
	case nonBlocking:
		ok, err = fl.TryRLock()
	default:
		err, ok = fl.RLock(), true
	}
	if err != nil || !ok {
		return nil, false, err
	}
	return &Lock{path: path, unlock: fl.Unlock}, true, nil
}
