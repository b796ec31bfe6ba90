package kvm

import (
	"fmt"
	"os"
	"regexp"
)

// kvmUsable tells whether KVM can really run guests of guestArch here.
// KVM runs only guests of the host's architecture, /dev/kvm must open
// read-write, and then the host's profile (machineProfiles) says how it
// proves that KVM really works (its KVMWorks).
func kvmUsable(guestArch, host, devPath, cpuinfoPath string) (bool, string) {
	if guestArch != host {
		return false, fmt.Sprintf("KVM runs only guests of the host's architecture: arch = %q on an %s host", guestArch, host)
	}
	f, err := os.OpenFile(devPath, os.O_RDWR, 0)
	if err != nil {
		return false, fmt.Sprintf("%s cannot be opened read-write (%v); add your user to the kvm group or load the kvm module", devPath, err)
	}
	defer f.Close()
	p, ok := machineProfiles[host]
	if !ok {
		return false, fmt.Sprintf("this plugin builds no guests for an %s host (arch: %s)", host, archNames())
	}
	if why := p.KVMWorks(f, devPath, cpuinfoPath); why != "" {
		return false, why
	}
	return true, ""
}

// x86KVMWorks: an x86 CPU must show hardware virtualisation (vmx or svm):
// some hosts expose a /dev/kvm that is a software layer without them, on
// which guests never finish booting.
func x86KVMWorks(_ *os.File, _, cpuinfoPath string) string {
	cpuinfo, err := os.ReadFile(cpuinfoPath)
	if err != nil {
		return fmt.Sprintf("cannot read %s: %v", cpuinfoPath, err)
	}
	if !cpuVirtFlags.Match(cpuinfo) {
		return fmt.Sprintf("the CPU shows neither vmx nor svm in %s (no hardware virtualisation, e.g. nested virtualisation is off)", cpuinfoPath)
	}
	return ""
}

var cpuVirtFlags = regexp.MustCompile(`(?m)^flags\s*:.*\b(vmx|svm)\b`)

// armKVMWorks: an arm64 CPU has no virtualisation flag to read, so the
// device must create a VM (KVM_CREATE_VM).
func armKVMWorks(dev *os.File, devPath, _ string) string {
	if err := kvmCreateVM(dev); err != nil {
		return fmt.Sprintf("%s does not create a VM (%v)", devPath, err)
	}
	return ""
}

// chooseAccelerator resolves the accelerator option to what QEMU gets for
// a guestArch guest on a host host (machineProfiles' names).
// It returns the accelerator, a notice for the user (may be empty) and an
// error when "kvm" was asked for and cannot work.
func chooseAccelerator(option, guestArch, host, devPath, cpuinfoPath string) (accel, notice string, err error) {
	switch option {
	case "auto":
		if ok, why := kvmUsable(guestArch, host, devPath, cpuinfoPath); ok {
			return "kvm", "", nil
		} else {
			return "tcg", "KVM is not usable (" + why + "): using TCG software emulation, which is many times slower", nil
		}
	case "kvm":
		if ok, why := kvmUsable(guestArch, host, devPath, cpuinfoPath); !ok {
			return "", "", fmt.Errorf("accelerator = \"kvm\" but KVM is not usable: %s; use accelerator = \"auto\" or \"tcg\" to emulate (slow)", why)
		}
		return "kvm", "", nil
	case "none":
		return "tcg", "", nil
	default:
		return option, "", nil
	}
}
