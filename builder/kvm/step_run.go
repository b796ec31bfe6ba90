package kvm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	sdknet "github.com/hashicorp/packer-plugin-sdk/net"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// stepRun reserves a host port for SSH (locked across parallel builds) and
// starts QEMU without a display: serial console to a file, QMP socket for
// control, SSH forwarded from 127.0.0.1 only.
//
// Uses: config, driver, ui, phases and fail_build (Run), temp_dir and
// serial_log (stepPrepare), disk_path (stepCreateDisk), seed_path and mac
// (stepSeed), efi_code and efivars_work (stepEFIVars).
// Produces: vm (stepWaitSSH, stepShutdown, Run: a VM fault), ssh_host_port
// (stepWaitSSH, the SDK's StepConnect), instance_id (the SDK's StepProvision:
// the provisioners' ID).
type stepRun struct {
	listener *sdknet.Listener
	vm       VM
}

// Tries when QEMU cannot bind the reserved port (another program took it
// between our check and QEMU's bind).
const portAttempts = 5

func (s *stepRun) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	cfg := state.Get("config").(*Config)
	driver := state.Get("driver").(Driver)
	ui := state.Get("ui").(packersdk.Ui)

	accel, notice, err := chooseAccelerator(cfg.Accelerator, cfg.Arch, hostArch(), "/dev/kvm", "/proc/cpuinfo")
	if err != nil {
		return halt(state, err)
	}
	if notice != "" {
		ui.Say(notice)
	}

	tmp := state.Get("temp_dir").(string)
	qmp := filepath.Join(tmp, "qmp.sock")
	var lastErr error
	for attempt := 0; attempt < portAttempts; attempt++ {
		l, err := sdknet.ListenRangeConfig{Addr: "127.0.0.1", Min: cfg.HostPortMin, Max: cfg.HostPortMax + 1, Network: "tcp"}.Listen(ctx)
		if err != nil {
			return halt(state, fmt.Errorf("host_port_min/host_port_max: no free port in %d..%d: %w", cfg.HostPortMin, cfg.HostPortMax, err))
		}
		// Keep Packer's lock on the port, free the socket for QEMU.
		l.Listener.Close()
		s.listener = l

		args, err := qemuArgs(cfg, state, accel, l.Port, qmp)
		if err != nil {
			return halt(state, err)
		}
		ui.Say(fmt.Sprintf("Starting QEMU (%s, %d CPUs, %d MiB), SSH forwarded from 127.0.0.1:%d", accel, cfg.CPUs, cfg.Memory, l.Port))
		_ = os.Remove(qmp)
		vm, err := driver.Start(args, qmp)
		if err != nil {
			return halt(state, err)
		}
		if err := waitQMPReady(ctx, vm, qmp); err != nil {
			lastErr = err
			s.listener.Close()
			s.listener = nil
			if strings.Contains(err.Error(), "hostfwd") || strings.Contains(err.Error(), "host forwarding") {
				continue // the port was taken after all: another one
			}
			return halt(state, fmt.Errorf("QEMU did not start: %w", err))
		}
		if err := vm.Watch(s.faultWatch(state, vm)); err != nil {
			vm.Kill()
			return halt(state, fmt.Errorf("QEMU's QMP connection: %w", err))
		}
		s.vm = vm
		state.Put("vm", vm)
		state.Put("ssh_host_port", l.Port)
		state.Put("instance_id", cfg.VMName)
		ui.Say("Serial console log: " + state.Get("serial_log").(string))
		return multistep.ActionContinue
	}
	return halt(state, fmt.Errorf("QEMU could not bind an SSH port after %d tries: %w", portAttempts, lastErr))
}

// faultWatch is how the VM watcher fails the build: the fault is shown at
// once, cancels the build's context (the running step, a provisioner's
// command included, returns) and QEMU is stopped, which also ends any SSH
// session through its forward. The build's error is then the fault.
func (s *stepRun) faultWatch(state multistep.StateBag, vm VM) FaultWatch {
	ui := state.Get("ui").(packersdk.Ui)
	phase := func() string { return "" }
	if p, ok := state.GetOk("phases"); ok {
		phase = p.(*phases).now
	}
	return FaultWatch{
		Disk:   state.Get("disk_path").(string),
		Serial: state.Get("serial_log").(string),
		Phase:  phase,
		OnFault: func(err error) {
			first, _, _ := strings.Cut(err.Error(), "\n")
			ui.Error("Stopping the build: " + first)
			if fail, ok := state.GetOk("fail_build"); ok {
				fail.(context.CancelCauseFunc)(err)
			}
			vm.Kill()
		},
	}
}

// waitQMPReady waits until QEMU's QMP socket exists (QEMU has set up its
// devices and network) or QEMU exits.
func waitQMPReady(ctx context.Context, vm VM, qmp string) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(qmp); err == nil {
			return nil
		}
		select {
		case <-vm.Done():
			return vm.Err()
		case <-ctx.Done():
			vm.Kill()
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (s *stepRun) Cleanup(state multistep.StateBag) {
	if s.vm != nil {
		select {
		case <-s.vm.Done():
		default:
			if ui, ok := state.Get("ui").(packersdk.Ui); ok {
				ui.Say("Stopping QEMU...")
			}
			s.vm.Kill()
		}
	}
	if s.listener != nil {
		s.listener.Close()
	}
}

// qemuArgs is QEMU's command line, and nothing else: it reads the files the
// earlier steps made (disk, seed, UEFI firmware) from the state bag.
// qemuargs are appended: they add to the builder's arguments and never
// replace them.
func qemuArgs(cfg *Config, state multistep.StateBag, accel string, sshPort int, qmp string) ([]string, error) {
	disk := state.Get("disk_path").(string)
	seed := state.Get("seed_path").(string)
	mac := state.Get("mac").(string)
	serial := state.Get("serial_log").(string)
	profile := machineProfiles[cfg.Arch]

	cpu := cfg.CPUModel
	switch {
	case cpu != "":
	case accel == "kvm":
		cpu = "host"
	default:
		cpu = profile.TCGCPU
	}
	args := []string{
		"-name", optValue(cfg.VMName),
		"-machine", "type=" + cfg.MachineType,
		"-accel", accel,
		"-cpu", cpu,
		"-smp", strconv.Itoa(cfg.CPUs),
		"-m", strconv.Itoa(cfg.Memory) + "M",
		"-display", "none",
		"-serial", "file:" + serial,
		"-qmp", "unix:" + optValue(qmp) + ",server=on,wait=off",
		"-no-user-config", "-nodefaults",
		"-vga", "none",
	}
	driveOpts := fmt.Sprintf("file=%s,format=qcow2,cache=%s,discard=%s", optValue(disk), cfg.DiskCache, cfg.DiskDiscard)
	if cfg.DiskDiscard == "unmap" {
		driveOpts += ",detect-zeroes=unmap"
	}
	switch cfg.DiskInterface {
	case "virtio":
		args = append(args, "-drive", driveOpts+",if=virtio")
	case "ide":
		args = append(args, "-drive", driveOpts+",if=ide")
	case "sata":
		args = append(args, "-device", "ahci,id=ahci0", "-drive", driveOpts+",if=none,id=disk0", "-device", "ide-hd,drive=disk0,bus=ahci0.0")
	case "scsi", "virtio-scsi":
		args = append(args, "-device", "virtio-scsi-pci,id=scsi0", "-drive", driveOpts+",if=none,id=disk0", "-device", "scsi-hd,drive=disk0,bus=scsi0.0")
	}
	seedDrive := "file=" + optValue(seed) + ",format=raw,media=cdrom,readonly=on"
	if profile.SeedBus == "scsi" {
		// No IDE on the machine: a CD-ROM on its own virtio-scsi controller.
		args = append(args, "-device", "virtio-scsi-pci,id=scsiseed", "-drive", seedDrive+",if=none,id=seed",
			"-device", "scsi-cd,drive=seed,bus=scsiseed.0")
	} else {
		args = append(args, "-drive", seedDrive+",if=ide")
	}
	args = append(args,
		"-netdev", fmt.Sprintf("user,id=net0,hostfwd=tcp:127.0.0.1:%d-:%d", sshPort, cfg.Comm.SSHPort),
		"-device", fmt.Sprintf("%s,netdev=net0,mac=%s", cfg.NetDevice, mac),
	)
	// A kernel panic is then an event (GUEST_PANICKED) for the watcher.
	if profile.hasPanicDevice(cfg.MachineType) {
		args = append(args, "-device", profile.PanicDevice)
	}
	if !cfg.DisableRNG {
		args = append(args, "-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", "virtio-rng-pci,rng=rng0")
	}
	if cfg.Firmware == "uefi" {
		// The files stepEFIVars made: the code (padded when it was short)
		// read-only, and this build's own copy of the variables.
		code, vars := state.Get("efi_code").(string), state.Get("efivars_work").(string)
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+optValue(code),
			"-drive", "if=pflash,format=raw,unit=1,file="+optValue(vars))
	}
	for _, a := range cfg.QemuArgs {
		args = append(args, a...)
	}
	return args, nil
}

// optValue escapes a value inside a QEMU option list (a,b=c,...): a comma
// is doubled, so a path such as output-a,b/ names one file. (-serial
// file:PATH takes the rest of its argument as it is.)
func optValue(s string) string { return strings.ReplaceAll(s, ",", ",,") }
