package kvm

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
)

// machineProfile is everything that differs between guest architectures:
// the one place where `arch` is turned into QEMU's binary, machine, CPU,
// firmware and devices.
type machineProfile struct {
	// QemuBinary is the default qemu_binary and QemuPackage the Debian
	// package that provides it.
	QemuBinary, QemuPackage string
	// MachineType is the default machine_type.
	MachineType string
	// TCGCPU is the CPU model emulated by default (cpu_model unset, TCG).
	TCGCPU string
	// DefaultFirmware is the default firmware; BIOS tells whether
	// firmware = "bios" exists at all.
	DefaultFirmware string
	BIOS            bool
	// EFICode and EFIVars are the UEFI firmware files looked for (first
	// found wins) and EFIPackage the Debian package that has them.
	EFICode, EFIVars []string
	EFIPackage       string
	// PflashSize is the size in bytes QEMU's machine wants for each pflash
	// drive (0: any): smaller firmware files are copied and zero-padded.
	PflashSize int64
	// RemovableEFIPath is where the firmware looks for a bootloader without
	// NVRAM entries (for messages and docs).
	RemovableEFIPath string
	// SeedBus is how the cidata seed is attached: "ide" (a CD-ROM on the
	// IDE controller) or "scsi" (a CD-ROM on its own virtio-scsi controller,
	// for machines without IDE).
	SeedBus string
	// PanicDevice is the pvpanic device (a kernel panic is then a QMP
	// event) for the machine types starting with one of PanicMachines.
	PanicDevice   string
	PanicMachines []string
	// KVMWorks proves, on a host of this architecture, that the opened
	// KVM device dev (at devPath) really runs guests; it returns why not,
	// or "" when it does.
	KVMWorks func(dev *os.File, devPath, cpuinfoPath string) string
}

func (p machineProfile) hasPanicDevice(machine string) bool {
	return slices.ContainsFunc(p.PanicMachines, func(prefix string) bool { return strings.HasPrefix(machine, prefix) })
}

// tcgCPUModel is the CPU emulated by default for amd64: QEMU's qemu64 (AMD,
// so no Meltdown page-table isolation in the guest) plus the x86-64-v2
// features. `max` costs more to emulate (see cpu_model).
const tcgCPUModel = "qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt"

// tcgCPUModelARM64 is the CPU emulated by default for arm64: QEMU's `max`
// (every feature QEMU emulates) with pointer authentication computed by
// QEMU's own cheap algorithm instead of the architected QARMA one (QEMU's
// docs, "Arm CPU features"). Measured on a Debian 13 arm64 guest under TCG
// on x86 (docs/builders/kvm.mdx, "arm64"): as fast as `neoverse-n1` within
// the noise (a little faster on average of two boots each), and it accepts
// any guest; `cortex-a57` reached SSH about 40% later.
const tcgCPUModelARM64 = "max,pauth-impdef=on"

// machineProfiles maps `arch` (Debian's architecture names, as the
// cloudimg-image data source uses) to its profile.
var machineProfiles = map[string]machineProfile{
	"amd64": {
		QemuBinary: "qemu-system-x86_64", QemuPackage: "qemu-system-x86",
		MachineType:     "pc",
		TCGCPU:          tcgCPUModel,
		DefaultFirmware: "bios", BIOS: true,
		EFICode:          []string{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/qemu/OVMF_CODE.fd"},
		EFIVars:          []string{"/usr/share/OVMF/OVMF_VARS_4M.fd", "/usr/share/OVMF/OVMF_VARS.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd", "/usr/share/qemu/OVMF_VARS.fd"},
		EFIPackage:       "ovmf",
		RemovableEFIPath: "EFI/BOOT/BOOTX64.EFI",
		SeedBus:          "ide",
		PanicDevice:      "pvpanic",
		PanicMachines:    []string{"pc", "q35"},
		KVMWorks:         x86KVMWorks,
	},
	"arm64": {
		QemuBinary: "qemu-system-aarch64", QemuPackage: "qemu-system-arm",
		MachineType:     "virt",
		TCGCPU:          tcgCPUModelARM64,
		DefaultFirmware: "uefi", BIOS: false,
		// AAVMF: Debian's and Ubuntu's qemu-efi-aarch64 (already 64 MiB);
		// edk2-aarch64: Fedora's.
		EFICode:          []string{"/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw", "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"},
		EFIVars:          []string{"/usr/share/AAVMF/AAVMF_VARS.fd", "/usr/share/edk2/aarch64/vars-template-pflash.raw"},
		EFIPackage:       "qemu-efi-aarch64",
		PflashSize:       64 << 20,
		RemovableEFIPath: "EFI/BOOT/BOOTAA64.EFI",
		SeedBus:          "scsi",
		PanicDevice:      "pvpanic-pci",
		PanicMachines:    []string{"virt"},
		KVMWorks:         armKVMWorks,
	},
}

// hostArch is the host's architecture in the names of machineProfiles
// (Go's GOARCH uses the same names for these two).
func hostArch() string { return runtime.GOARCH }

// defaultArch is `arch` when unset: the host's, or amd64 on other hosts.
func defaultArch() string {
	if _, ok := machineProfiles[hostArch()]; ok {
		return hostArch()
	}
	return "amd64"
}

func archNames() string {
	names := make([]string, 0, len(machineProfiles))
	for n := range machineProfiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// padFirmware copies src to dst, zero-padded to size bytes when it is
// shorter (QEMU refuses a pflash drive of another size than the machine's
// flash bank). size 0 copies as it is; a longer file is an error.
func padFirmware(src, dst string, size int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	n, err := io.Copy(out, in)
	if err == nil && size > 0 {
		if n > size {
			err = fmt.Errorf("%s is %d bytes, larger than the %d-byte flash of the machine", src, n, size)
		} else {
			err = out.Truncate(size)
		}
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// needsPadding tells whether path is shorter than size (size 0: never).
func needsPadding(path string, size int64) (bool, error) {
	if size == 0 {
		return false, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	return fi.Size() < size, nil
}
