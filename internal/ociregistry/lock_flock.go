//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package ociregistry

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"syscall"
)

// lockTag serialises the read-modify-write of one tag (see tagPlatform)
// among the processes of this host: the builds of one `packer build` run
// post-process in separate plugin processes. It takes an exclusive
// flock(2) on a lock file in the temporary directory named by a hash of
// key; there is one such file per repository and tag ever pushed from this
// host, empty. The kernel releases the lock if the process dies. Nothing
// orders pushes from different hosts (see Push).
func lockTag(key string) (unlock func(), err error) {
	sum := sha256.Sum256([]byte(key))
	path := filepath.Join(os.TempDir(), "packer-cloudimg-oci-"+hex.EncodeToString(sum[:8])+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
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
