package ociregistry

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/lockfile"
)

// lockTag serialises the read-modify-write of one tag (see tagPlatform)
// among the processes of this host: the builds of one `packer build` run
// post-process in separate plugin processes. The lock is a file in the
// temporary directory named by a hash of key, which goes again when its
// last holder lets go (internal/lockfile); the kernel releases it if the
// process dies. Nothing orders pushes from different hosts (see Push).
func lockTag(key string) (unlock func(), err error) {
	sum := sha256.Sum256([]byte(key))
	l, err := lockfile.LockExclusive(filepath.Join(os.TempDir(), "packer-cloudimg-oci-"+hex.EncodeToString(sum[:8])+".lock"))
	if err != nil {
		return nil, err
	}
	return func() { l.Unlock() }, nil
}
