//go:build !linux

package kvm

import "os/exec"

// startTied starts cmd; exited gets cmd.Wait's result. Outside Linux
// nothing ties QEMU's life to this process: QEMU stays in Packer's process
// group (a Ctrl-C or a kill of the group reaches it), but when only the
// plugin dies, QEMU keeps running until it is stopped by hand. The next
// build into the same output directory still removes the work files.
func startTied(cmd *exec.Cmd, exited func(error)) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { exited(cmd.Wait()) }()
	return nil
}

// exitedAlready is not known here: false.
func exitedAlready(int) bool { return false }
