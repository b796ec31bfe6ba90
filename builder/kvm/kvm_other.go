//go:build !linux

package kvm

import (
	"errors"
	"os"
)

// kvmCreateVM: KVM exists on Linux only.
func kvmCreateVM(*os.File) error { return errors.New("KVM needs Linux") }
