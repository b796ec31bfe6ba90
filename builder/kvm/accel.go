package kvm

import (
	"fmt"
	"os"
	"regexp"
)

// kvmUsable tells whether KVM can really run guests of guestArch here.
// KVM runs only guests of the host's architecture. /dev/kvm must open
// read-write; on an x86 host the CPU must show hardware virtualisation (vmx
// or svm): some hosts expose a /dev/kvm that is a software layer without
// them, on which guests never finish booting. An arm64 CPU has no such flag
// to read, so there /dev/kvm must create a VM (KVM_CREATE_VM).
func kvmUsable(guestArch, host, devPath, cpuinfoPath string) (bool, string) {
	if guestArch != host {
		return false, fmt.Sprintf("KVM runs only guests of the host's architecture: arch = %q on an %s host", guestArch, host)
	}
	f, err := os.OpenFile(devPath, os.O_RDWR, 0)
	if err != nil {
		return false, fmt.Sprintf("%s cannot be opened read-write (%v); add your user to the kvm group or load the kvm module", devPath, err)
	}
	defer f.Close()
	if host == "arm64" {
		if err := kvmCreateVM(f); err != nil {
			return false, fmt.Sprintf("%s does not create a VM (%v)", devPath, err)
		}
		return true, ""
	}
	cpuinfo, err := os.ReadFile(cpuinfoPath)
	if err != nil {
		return false, fmt.Sprintf("cannot read %s: %v", cpuinfoPath, err)
	}
	if !cpuVirtFlags.Match(cpuinfo) {
		return false, fmt.Sprintf("the CPU shows neither vmx nor svm in %s (no hardware virtualisation, e.g. nested virtualisation is off)", cpuinfoPath)
	}
	return true, ""
}

var cpuVirtFlags = regexp.MustCompile(`(?m)^flags\s*:.*\b(vmx|svm)\b`)

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
