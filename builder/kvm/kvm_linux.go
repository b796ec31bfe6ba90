package kvm

import (
	"os"
	"syscall"
)

// KVM_CREATE_VM is _IO(KVMIO, 0x01) with KVMIO 0xAE (linux/kvm.h).
const kvmCreateVMIoctl = 0xAE01

// kvmCreateVM asks the KVM device f for a VM (machine type 0, the default)
// and closes it again: the proof that KVM works on a host whose CPU flags
// cannot tell.
func kvmCreateVM(f *os.File) error {
	fd, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), kvmCreateVMIoctl, 0)
	if errno != 0 {
		return errno
	}
	return syscall.Close(int(fd))
}
