package kvm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// fakeDriver records calls and writes small files where qemu-img would.
type fakeDriver struct {
	info   ImageInfo
	calls  []string
	failOn string
}

func (d *fakeDriver) Info(path string) (*ImageInfo, error) {
	d.calls = append(d.calls, "info "+path)
	i := d.info
	return &i, nil
}

func (d *fakeDriver) Convert(ctx context.Context, src, srcFormat, dst, dstFormat string, opts ConvertOptions) error {
	d.calls = append(d.calls, "convert "+srcFormat+" "+dstFormat+" "+map[bool]string{true: "-c " + opts.CompressionType, false: ""}[opts.Compress])
	if d.failOn == "convert" {
		os.WriteFile(dst, []byte("partial"), 0o644)
		return errors.New("qemu-img: disk full")
	}
	return os.WriteFile(dst, []byte("image from "+filepath.Base(src)), 0o644)
}

func (d *fakeDriver) Overlay(backing, backingFormat, dst string) error {
	d.calls = append(d.calls, "overlay "+backingFormat)
	return os.WriteFile(dst, []byte("overlay"), 0o644)
}

func (d *fakeDriver) Resize(path, format string, size uint64) error {
	d.calls = append(d.calls, "resize")
	return nil
}

func (d *fakeDriver) Start(args []string, qmp string) (VM, error) { return newFakeVM(), nil }

func stepState(t *testing.T, cfg *Config, d Driver) *multistep.BasicStateBag {
	state := new(multistep.BasicStateBag)
	state.Put("config", cfg)
	state.Put("driver", d)
	state.Put("ui", packersdk.TestUi(t))
	return state
}

func TestCreateDiskSizes(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		diskSize string
		backing  bool
		want     string
		fail     string
	}{
		{"", false, "convert qcow2 qcow2 ", ""},
		{"", true, "overlay qcow2", ""},
		{"4G", false, "resize", ""},
		{"2G", false, "", ""}, // equal: no resize
		{"1G", false, "", "smaller than the source"},
	} {
		cfg := &Config{DiskSize: tc.diskSize, UseBackingFile: tc.backing}
		d := &fakeDriver{info: ImageInfo{Format: "qcow2", VirtualSize: 2 << 30}}
		state := stepState(t, cfg, d)
		state.Put("iso_path", filepath.Join(dir, "src.qcow2"))
		state.Put("image_path", filepath.Join(dir, "out.qcow2"))
		s := &stepCreateDisk{}
		action := s.Run(context.Background(), state)
		if tc.fail != "" {
			if action != multistep.ActionHalt || !strings.Contains(state.Get("error").(error).Error(), tc.fail) {
				t.Errorf("%+v: want failure %q, got %v", tc, tc.fail, state.Get("error"))
			}
			continue
		}
		if action != multistep.ActionContinue {
			t.Fatalf("%+v: %v", tc, state.Get("error"))
		}
		calls := strings.Join(d.calls, ";")
		if tc.want != "" && !strings.Contains(calls, tc.want) {
			t.Errorf("%+v: calls %q lack %q", tc, calls, tc.want)
		}
		if tc.want == "" && strings.Contains(calls, "resize") {
			t.Errorf("%+v: resized: %q", tc, calls)
		}
		s.Cleanup(state)
		if _, err := os.Stat(state.Get("disk_path").(string)); !os.IsNotExist(err) {
			t.Errorf("%+v: build disk left behind", tc)
		}
	}
}

// Builds leave no lock file in the temporary directory once cleaned up
// (successful, refused or failed), while the exclusion holds during them.
func TestOutputDirLeavesNoLockFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "output")
	run := func(name string) (*stepOutputDir, multistep.StateBag, multistep.StepAction) {
		state := stepState(t, &Config{OutputDir: dir, VMName: name}, &fakeDriver{})
		s := &stepOutputDir{}
		return s, state, s.Run(context.Background(), state)
	}
	first, firstState, action := run("node")
	if action != multistep.ActionContinue {
		t.Fatal(firstState.Get("error"))
	}
	claim, _ := claimPath(filepath.Join(dir, "node"))
	for _, p := range []string{claim, dirLockPath(dir)} {
		if _, err := os.Lstat(p); err != nil {
			t.Fatalf("no lock file %s while the build runs: %v", p, err)
		}
	}
	refused, refusedState, action := run("node")
	if action != multistep.ActionHalt {
		t.Fatal("a second build of the same name was not refused")
	}
	refused.Cleanup(refusedState)
	if _, err := os.Lstat(dirLockPath(dir)); err != nil {
		t.Fatalf("the refused build removed the directory lock the first still holds: %v", err)
	}
	other, otherState, _ := run("other")
	first.Cleanup(firstState)
	otherState.Put(multistep.StateHalted, true) // a failed build
	other.Cleanup(otherState)
	otherClaim, _ := claimPath(filepath.Join(dir, "other"))
	for _, p := range []string{claim, otherClaim, dirLockPath(dir)} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("lock file %s left in the temporary directory (%v)", p, err)
		}
	}
}

// Two builds of one image name (two sources without vm_name) would share the
// build disk: the second is refused while the first runs, and the name is free
// again once the first is cleaned up. Other names in the directory are not
// affected, and neither is an existing file without -force.
func TestOutputDirClaimsTheImageName(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "output")
	run := func(name string, force bool) (*stepOutputDir, multistep.StateBag, multistep.StepAction) {
		cfg := &Config{OutputDir: dir, VMName: name}
		cfg.PackerForce = force
		state := stepState(t, cfg, &fakeDriver{})
		s := &stepOutputDir{}
		return s, state, s.Run(context.Background(), state)
	}
	first, firstState, action := run("packer-node", false)
	if action != multistep.ActionContinue {
		t.Fatal(firstState.Get("error"))
	}
	second, state, action := run("packer-node", false)
	if action != multistep.ActionHalt {
		t.Fatal("a second build of the same image name was not refused")
	}
	second.Cleanup(state) // must not release the first build's claim
	if msg := state.Get("error").(error).Error(); !strings.Contains(msg, "another build is writing") || !strings.Contains(msg, "vm_name") {
		t.Errorf("error %q does not explain the conflict", msg)
	}
	if _, _, action := run("packer-node", false); action != multistep.ActionHalt {
		t.Fatal("the refused build's cleanup released the first build's claim")
	}
	other, otherState, action := run("other", false)
	if action != multistep.ActionContinue {
		t.Fatalf("another vm_name in the same directory: %v", otherState.Get("error"))
	}
	other.Cleanup(otherState)

	first.Cleanup(firstState)
	again, againState, action := run("packer-node", false)
	if action != multistep.ActionContinue {
		t.Fatalf("the name stayed claimed after cleanup: %v", againState.Get("error"))
	}
	again.Cleanup(againState)

	os.WriteFile(filepath.Join(dir, "packer-node"), []byte("old image"), 0o644)
	refused, state, action := run("packer-node", false)
	if action != multistep.ActionHalt || !strings.Contains(state.Get("error").(error).Error(), "-force") {
		t.Errorf("an existing image without -force: %v", state.Get("error"))
	}
	refused.Cleanup(state)
	forced, forcedState, action := run("packer-node", true)
	if action != multistep.ActionContinue {
		t.Fatal(forcedState.Get("error"))
	}
	if _, err := os.Stat(filepath.Join(dir, "packer-node")); !os.IsNotExist(err) {
		t.Error("-force kept the previous image")
	}
	forced.Cleanup(forcedState)
}

func TestConvertIsAtomic(t *testing.T) {
	dir := t.TempDir()
	image := filepath.Join(dir, "out.qcow2")
	disk := filepath.Join(dir, ".out.qcow2.building.qcow2")
	os.WriteFile(disk, []byte("disk"), 0o644)

	d := &fakeDriver{failOn: "convert"}
	cfg := &Config{Format: "qcow2", DiskCompression: true, DiskCompressionType: "zstd"}
	state := stepState(t, cfg, d)
	state.Put("disk_path", disk)
	state.Put("image_path", image)
	if (&stepConvert{}).Run(context.Background(), state) != multistep.ActionHalt {
		t.Fatal("a failed conversion did not halt")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != filepath.Base(disk) {
			t.Errorf("left behind after a failed conversion: %s", e.Name())
		}
	}

	d.failOn = ""
	state = stepState(t, cfg, d)
	state.Put("disk_path", disk)
	state.Put("image_path", image)
	if (&stepConvert{}).Run(context.Background(), state) != multistep.ActionContinue {
		t.Fatal(state.Get("error"))
	}
	if b, _ := os.ReadFile(image); string(b) != "image from "+filepath.Base(disk) {
		t.Errorf("image content %q", b)
	}
	if !strings.Contains(strings.Join(d.calls, ";"), "-c zstd") {
		t.Errorf("disk_compression not passed: %v", d.calls)
	}
	if _, err := os.Stat(disk); !os.IsNotExist(err) {
		t.Error("build disk kept after conversion")
	}
}

func TestShutdownByQMPAndTimeout(t *testing.T) {
	cfg := &Config{}
	cfg.ShutdownTimeout = 50 * time.Millisecond

	vm := newFakeVM()
	vm.powerdown = func() { go vm.exit(nil) }
	state := stepState(t, cfg, nil)
	state.Put("vm", vm)
	if (&stepShutdown{}).Run(context.Background(), state) != multistep.ActionContinue || vm.killed {
		t.Fatalf("clean power-off: killed=%v err=%v", vm.killed, state.Get("error"))
	}

	stubborn := newFakeVM() // ignores the power button
	state = stepState(t, cfg, nil)
	state.Put("vm", stubborn)
	if (&stepShutdown{}).Run(context.Background(), state) != multistep.ActionContinue || !stubborn.killed {
		t.Fatal("a guest that ignores the power-off must be stopped after shutdown_timeout")
	}
}

func TestQemuArgs(t *testing.T) {
	cfg := &Config{VMName: "vm", Arch: "amd64", MachineType: "pc", CPUs: 2, Memory: 1024, DiskCache: "unsafe", DiskDiscard: "unmap",
		DiskInterface: "virtio", NetDevice: "virtio-net-pci", QemuArgs: [][]string{{"-device", "virtio-balloon"}}}
	cfg.Comm.SSHPort = 22
	state := stepState(t, cfg, nil)
	state.Put("disk_path", "/o/disk.qcow2")
	state.Put("seed_path", "/t/cidata.iso")
	state.Put("mac", "52:54:00:aa:bb:cc")
	state.Put("serial_log", "/t/serial.log")
	args, err := qemuArgs(cfg, state, "tcg", 2345, "/t/qmp.sock")
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(args, " ")
	for _, want := range []string{
		"hostfwd=tcp:127.0.0.1:2345-:22", "mac=52:54:00:aa:bb:cc", "virtio-rng-pci", "-display none",
		"-serial file:/t/serial.log", "-qmp unix:/t/qmp.sock,server=on,wait=off", "cache=unsafe", "-accel tcg",
		"media=cdrom", "-device virtio-balloon", "-cpu qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt ",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("qemu args lack %q:\n%s", want, line)
		}
	}
	if !strings.HasSuffix(line, "-device virtio-balloon") {
		t.Errorf("qemuargs must come last: %s", line)
	}
	cfg.DisableRNG = true
	args, _ = qemuArgs(cfg, state, "kvm", 2345, "/t/qmp.sock")
	if line := strings.Join(args, " "); strings.Contains(line, "rng") || !strings.Contains(line, "-cpu host") {
		t.Errorf("disable_rng / kvm: %s", line)
	}
	cfg.CPUModel = "Nehalem"
	args, _ = qemuArgs(cfg, state, "tcg", 2345, "/t/qmp.sock")
	if line := strings.Join(args, " "); !strings.Contains(line, "-cpu Nehalem ") {
		t.Errorf("cpu_model: %s", line)
	}

	// A comma in a path or name is doubled inside QEMU's option lists
	// (output_directory "out,1" once made QEMU look for a file "out").
	cfg.VMName = "vm,1"
	state.Put("disk_path", "/o,1/disk.qcow2")
	state.Put("seed_path", "/t,1/cidata.iso")
	state.Put("serial_log", "/t,1/serial.log")
	args, _ = qemuArgs(cfg, state, "tcg", 2345, "/t,1/qmp.sock")
	line = strings.Join(args, " ")
	for _, want := range []string{"-name vm,,1 ", "file=/o,,1/disk.qcow2,", "file=/t,,1/cidata.iso,", "unix:/t,,1/qmp.sock,server=on", "-serial file:/t,1/serial.log "} {
		if !strings.Contains(line, want) {
			t.Errorf("qemu args lack %q:\n%s", want, line)
		}
	}
}

// The final conversion's qemu-img command line for each compression choice.
func TestConvertArgs(t *testing.T) {
	for _, tc := range []struct {
		set  map[string]interface{}
		want string
	}{
		{nil, "convert -f qcow2 -O qcow2 disk out"},
		{map[string]interface{}{"disk_compression": true}, "convert -f qcow2 -O qcow2 -c -o compression_type=zstd -W disk out"},
		{map[string]interface{}{"disk_compression": true, "disk_compression_type": "zstd"}, "convert -f qcow2 -O qcow2 -c -o compression_type=zstd -W disk out"},
		{map[string]interface{}{"disk_compression": true, "disk_compression_type": "zlib"}, "convert -f qcow2 -O qcow2 -c -o compression_type=zlib -W disk out"},
		{map[string]interface{}{"disk_compression_type": "zlib"}, "convert -f qcow2 -O qcow2 disk out"},
		{map[string]interface{}{"format": "raw"}, "convert -f qcow2 -O raw disk out"},
	} {
		raw := testConfig(t)
		for k, v := range tc.set {
			raw[k] = v
		}
		var c Config
		if _, err := c.Prepare(raw); err != nil {
			t.Fatalf("%v: %v", tc.set, err)
		}
		got := strings.Join(convertArgs("disk", "qcow2", "out", c.Format, c.convertOptions()), " ")
		if got != tc.want {
			t.Errorf("%v:\n got %s\nwant %s", tc.set, got, tc.want)
		}
	}
}

func TestQemuArgsARM64(t *testing.T) {
	dir := t.TempDir()
	code := filepath.Join(dir, "QEMU_EFI.fd") // short: gets a padded copy
	os.WriteFile(code, []byte("code"), 0o644)
	vars := filepath.Join(dir, "vars.fd")
	os.WriteFile(vars, []byte("vars"), 0o644)
	cfg := &Config{VMName: "vm", Arch: "arm64", MachineType: "virt", CPUs: 2, Memory: 1024, DiskCache: "unsafe", DiskDiscard: "unmap",
		DiskInterface: "virtio", NetDevice: "virtio-net-pci", Firmware: "uefi", EFIFirmwareCode: code, EFIFirmwareVars: vars}
	cfg.Comm.SSHPort = 22
	state := stepState(t, cfg, nil)
	state.Put("disk_path", filepath.Join(dir, "disk.qcow2"))
	state.Put("image_path", filepath.Join(dir, "image.qcow2"))
	state.Put("temp_dir", dir)
	state.Put("seed_path", "/t/cidata.iso")
	state.Put("mac", "52:54:00:aa:bb:cc")
	state.Put("serial_log", "/t/serial.log")
	efi := &stepEFIVars{}
	if a := efi.Run(context.Background(), state); a != multistep.ActionContinue {
		t.Fatal(state.Get("error"))
	}
	args, err := qemuArgs(cfg, state, "tcg", 2345, "/t/qmp.sock")
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(args, " ")
	for _, want := range []string{
		"-machine type=virt ", "-cpu max,pauth-impdef=on ", "-device pvpanic-pci",
		"-device virtio-scsi-pci,id=scsiseed -drive file=/t/cidata.iso,format=raw,media=cdrom,readonly=on,if=none,id=seed -device scsi-cd,drive=seed,bus=scsiseed.0",
		"if=pflash,format=raw,unit=0,readonly=on,file=" + filepath.Join(dir, "efi-code.fd"),
	} {
		if !strings.Contains(line, want) {
			t.Errorf("arm64 qemu args lack %q:\n%s", want, line)
		}
	}
	if strings.Contains(line, "if=ide") || strings.Contains(line, "-device pvpanic ") {
		t.Errorf("arm64 qemu args use a device the virt machine lacks:\n%s", line)
	}
	work := state.Get("efivars_work").(string)
	if !strings.Contains(line, "if=pflash,format=raw,unit=1,file="+work) {
		t.Errorf("arm64 qemu args lack the build's UEFI variables %s:\n%s", work, line)
	}
	for _, f := range []string{filepath.Join(dir, "efi-code.fd"), work} {
		if fi, err := os.Stat(f); err != nil || fi.Size() != 64<<20 {
			t.Errorf("%s: not padded to 64 MiB: %v", f, err)
		}
	}
	// A build that stops before the conversion leaves no variables behind.
	efi.Cleanup(state)
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Errorf("UEFI variables work file left after cleanup: %v", err)
	}
}

// A BIOS build makes no firmware files.
func TestEFIVarsBIOS(t *testing.T) {
	dir := t.TempDir()
	state := stepState(t, &Config{Firmware: "bios", Arch: "amd64"}, nil)
	state.Put("image_path", filepath.Join(dir, "image.qcow2"))
	state.Put("temp_dir", dir)
	if a := (&stepEFIVars{}).Run(context.Background(), state); a != multistep.ActionContinue {
		t.Fatal(state.Get("error"))
	}
	if _, ok := state.GetOk("efivars_work"); ok {
		t.Error("a BIOS build got UEFI variables")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a BIOS build wrote %v", ents)
	}
}
