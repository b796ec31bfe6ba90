//go:build linux || darwin || freebsd

package kvm

import "golang.org/x/sys/unix"

// freeSpace is the space left to unprivileged users on dir's filesystem.
func freeSpace(dir string) (uint64, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return uint64(st.Bavail) * uint64(st.Bsize), true
}
