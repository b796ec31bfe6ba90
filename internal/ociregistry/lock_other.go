//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package ociregistry

import "sync"

var tagLocks sync.Map // key -> *sync.Mutex

// lockTag serialises the read-modify-write of one tag within this process
// (no flock(2) here).
func lockTag(key string) (unlock func(), err error) {
	mu, _ := tagLocks.LoadOrStore(key, new(sync.Mutex))
	m := mu.(*sync.Mutex)
	m.Lock()
	return m.Unlock, nil
}
