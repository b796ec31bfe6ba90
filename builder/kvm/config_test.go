package kvm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testConfig(t *testing.T) map[string]interface{} {
	t.Helper()
	img := filepath.Join(t.TempDir(), "source.qcow2")
	if err := os.WriteFile(img, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	return map[string]interface{}{
		"iso_url":           img,
		"iso_checksum":      "none",
		"packer_build_name": "test",
	}
}

func TestPrepareDefaults(t *testing.T) {
	var c Config
	warns, err := c.Prepare(testConfig(t))
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	_ = warns
	checks := map[string][2]interface{}{
		"ssh_username":        {c.Comm.SSHUsername, "packer"},
		"ssh_host":            {c.Comm.SSHHost, "127.0.0.1"},
		"key type":            {c.Comm.SSHTemporaryKeyPairType, "ed25519"},
		"format":              {c.Format, "qcow2"},
		"disk_cache":          {c.DiskCache, "unsafe"},
		"disk_discard":        {c.DiskDiscard, "unmap"},
		"disk_interface":      {c.DiskInterface, "virtio"},
		"accelerator":         {c.Accelerator, "auto"},
		"vm_name":             {c.VMName, "packer-test"},
		"output_directory":    {c.OutputDir, "output-test"},
		"firmware":            {c.Firmware, "bios"},
		"net_device":          {c.NetDevice, "virtio-net-pci"},
		"cloud_init_timeout":  {c.CloudInitTimeout, 30 * time.Minute},
		"cloud_init_degraded": {c.CloudInitDegraded, "warn"},
		"cpus":                {c.CPUs, 2},
		"memory":              {c.Memory, 1024},
	}
	for name, v := range checks {
		if v[0] != v[1] {
			t.Errorf("%s = %v, want %v", name, v[0], v[1])
		}
	}
	if c.DiskCompressionType != "zstd" {
		t.Errorf("disk_compression_type = %q, want zstd", c.DiskCompressionType)
	}
	if c.DiskSize != "" {
		t.Errorf("disk_size defaults to %q, want empty (keep the source size)", c.DiskSize)
	}
	if strings.Join(c.SSHHostKeyTypes, ",") != "ed25519" {
		t.Errorf("ssh_host_key_types = %v", c.SSHHostKeyTypes)
	}
	if c.CloudInitWait.False() {
		t.Error("cloud_init_wait must default to true")
	}
}

func TestPrepareErrorsNameTheField(t *testing.T) {
	cases := []struct {
		set   map[string]interface{}
		field string
	}{
		{map[string]interface{}{"format": "vmdk"}, "format"},
		{map[string]interface{}{"disk_size": "big"}, "disk_size"},
		{map[string]interface{}{"disk_interface": "floppy"}, "disk_interface"},
		{map[string]interface{}{"disk_cache": "fast"}, "disk_cache"},
		{map[string]interface{}{"disk_discard": "yes"}, "disk_discard"},
		{map[string]interface{}{"disk_compression": true, "disk_compression_type": "xz"}, "disk_compression_type"},
		{map[string]interface{}{"disk_compression": true, "format": "raw"}, "disk_compression"},
		{map[string]interface{}{"accelerator": "xen"}, "accelerator"},
		{map[string]interface{}{"verify_key": []string{"/nonexistent/cosign.pub"}}, "verify_key[0]: public key /nonexistent/cosign.pub"},
		{map[string]interface{}{"mac_address": "nope"}, "mac_address"},
		{map[string]interface{}{"mac_address": "01:00:5e:00:00:01"}, "mac_address"},
		{map[string]interface{}{"host_port_min": 5000, "host_port_max": 4000}, "host_port_min"},
		{map[string]interface{}{"firmware": "coreboot"}, "firmware"},
		{map[string]interface{}{"memory": 64}, "memory"},
		{map[string]interface{}{"user_data": "#cloud-config\n", "user_data_file": "x"}, "user_data_file"},
		{map[string]interface{}{"user_data_file": "/does/not/exist"}, "user_data_file"},
		{map[string]interface{}{"network_config_file": "/does/not/exist"}, "network_config_file"},
		{map[string]interface{}{"user_data": "#cloud-config\npackages: [a\n"}, "user_data"},
		{map[string]interface{}{"user_data": "#!/bin/sh\necho hi\n"}, "user_data"},
		{map[string]interface{}{"network_config": "just a string"}, "network_config"},
		{map[string]interface{}{"cloud_init_degraded": "ignore"}, "cloud_init_degraded"},
		{map[string]interface{}{"ssh_host_key_types": []string{"ed448"}}, "ssh_host_key_types"},
		{map[string]interface{}{"vm_name": "a/b"}, "vm_name"},
		{map[string]interface{}{"qemuargs": [][]string{{}}}, "qemuargs"},
		{map[string]interface{}{"cd_label": "data", "cd_content": map[string]string{"a": "b"}}, "cd_label"},
		{map[string]interface{}{"iso_checksum": ""}, "iso_checksum"},
	}
	for _, tc := range cases {
		raw := testConfig(t)
		for k, v := range tc.set {
			raw[k] = v
		}
		var c Config
		_, err := c.Prepare(raw)
		if err == nil {
			t.Errorf("%v: no error", tc.set)
			continue
		}
		if !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%v: error does not name %s: %v", tc.set, tc.field, err)
		}
	}
}

// During `packer validate` a data source's outputs arrive as "<unknown>":
// the template is valid, and the checksum is checked at build time; a
// malformed literal checksum stays an error.
func TestPrepareAcceptsUnknownDataSourceOutputs(t *testing.T) {
	raw := testConfig(t)
	raw["iso_url"], raw["iso_checksum"] = "<unknown>", "<unknown>"
	var c Config
	if _, err := c.Prepare(raw); err != nil {
		t.Errorf("unknown iso_url/iso_checksum: %v", err)
	}
	raw = testConfig(t)
	raw["iso_checksum"] = "sha256:nothex"
	if _, err := (&Config{}).Prepare(raw); err == nil || !strings.Contains(err.Error(), "iso_checksum") {
		t.Errorf("a malformed checksum: %v", err)
	}
}

func TestPrepareLegacySeedWarns(t *testing.T) {
	raw := testConfig(t)
	raw["cd_label"] = "cidata"
	raw["cd_content"] = map[string]string{
		"user-data": "#cloud-config\nusers:\n  - name: packer\n    plain_text_passwd: packer\n    lock_passwd: false\nssh_pwauth: true\npackages: [curl]\n",
		"meta-data": "instance-id: fixed\nlocal-hostname: old\n",
	}
	var c Config
	warns, err := c.Prepare(raw)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if !strings.Contains(strings.Join(warns, "\n"), "user_data") {
		t.Errorf("warnings do not name the native options: %v", warns)
	}
	if len(c.seed.notes) != 2 {
		t.Errorf("Prepare derived %d notes on dropped seed content, want 2 (ssh_pwauth, the build user): %q", len(c.seed.notes), c.seed.notes)
	}
	// Deriving again (what the build step did before) must not change the
	// config: the notes are a result, not an accumulation.
	again, err := deriveSeed(&c)
	if err != nil {
		t.Fatalf("deriveSeed: %v", err)
	}
	if len(again.notes) != 2 || len(c.seed.notes) != 2 {
		t.Errorf("deriving twice gave %d notes and left %d in the config; want 2 and 2", len(again.notes), len(c.seed.notes))
	}
	sc := c.seed.withBuild("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB8Yq0rCgC8aTgqvs8mnR2dF0FhZ0ZTnz0c3nH1Tq7Qd test", "cloudimg-1", "52:54:00:12:34:56")
	if c.seed.base.InstanceID != "" || c.seed.base.AuthorizedKey != "" {
		t.Errorf("withBuild modified the derived seed input: %+v", c.seed.base)
	}
	ud := string(sc.UserData)
	if strings.Contains(ud, "plain_text_passwd") || strings.Contains(ud, "ssh_pwauth") {
		t.Errorf("legacy password user kept:\n%s", ud)
	}
	if !strings.Contains(ud, "curl") {
		t.Errorf("legacy packages lost:\n%s", ud)
	}
	if sc.InstanceID != "cloudimg-1" {
		t.Errorf("instance-id %q: the legacy meta-data must not fix it", sc.InstanceID)
	}
}

func TestParseSize(t *testing.T) {
	good := map[string]uint64{"10240": 10240 << 20, "20G": 20 << 30, "512M": 512 << 20, "1T": 1 << 40, "4GiB": 4 << 30, "100K": 100 << 10}
	for in, want := range good {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "-1G", "1.5G", "0", "99999999999999999999T"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q): no error", in)
		}
	}
}

func TestKVMUsable(t *testing.T) {
	dir := t.TempDir()
	dev := filepath.Join(dir, "kvm")
	os.WriteFile(dev, nil, 0o666)
	withVMX := filepath.Join(dir, "cpuinfo-vmx")
	os.WriteFile(withVMX, []byte("processor\t: 0\nflags\t\t: fpu vme vmx sse\n"), 0o644)
	without := filepath.Join(dir, "cpuinfo")
	os.WriteFile(without, []byte("processor\t: 0\nflags\t\t: fpu vme sse hypervisor\n"), 0o644)

	if a, _, err := chooseAccelerator("auto", "amd64", "amd64", dev, withVMX); err != nil || a != "kvm" {
		t.Errorf("auto with vmx: %s %v", a, err)
	}
	if a, notice, err := chooseAccelerator("auto", "amd64", "amd64", dev, without); err != nil || a != "tcg" || !strings.Contains(notice, "vmx") {
		t.Errorf("auto without vmx: %s %q %v", a, notice, err)
	}
	if a, notice, _ := chooseAccelerator("auto", "amd64", "amd64", filepath.Join(dir, "missing"), withVMX); a != "tcg" || !strings.Contains(notice, "kvm") {
		t.Errorf("auto without /dev/kvm: %s %q", a, notice)
	}
	if _, _, err := chooseAccelerator("kvm", "amd64", "amd64", dev, without); err == nil || !strings.Contains(err.Error(), "accelerator") {
		t.Errorf("kvm without vmx: %v", err)
	}
	if a, _, _ := chooseAccelerator("tcg", "amd64", "amd64", dev, withVMX); a != "tcg" {
		t.Errorf("tcg: %s", a)
	}
	// arm64 on an x86 host: always emulated, whatever /dev/kvm says.
	if a, notice, err := chooseAccelerator("auto", "arm64", "amd64", dev, withVMX); err != nil || a != "tcg" || !strings.Contains(notice, "host's architecture") {
		t.Errorf("auto, arm64 guest on amd64: %s %q %v", a, notice, err)
	}
	if _, _, err := chooseAccelerator("kvm", "arm64", "amd64", dev, withVMX); err == nil || !strings.Contains(err.Error(), "arm64") {
		t.Errorf("kvm, arm64 guest on amd64: %v", err)
	}
	// arm64 host: no CPU flag to read; a /dev/kvm that cannot create a VM
	// (here a plain file: the ioctl fails) means TCG.
	if a, notice, err := chooseAccelerator("auto", "arm64", "arm64", dev, without); err != nil || a != "tcg" || !strings.Contains(notice, "does not create a VM") {
		t.Errorf("auto, arm64 host without a working /dev/kvm: %s %q %v", a, notice, err)
	}
}

func TestArchProfiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "code.fd")
	os.WriteFile(good, []byte("code"), 0o644)
	base := map[string]interface{}{"iso_url": "https://example.com/x.qcow2", "iso_checksum": "none", "packer_build_name": "test"}
	prepare := func(extra map[string]interface{}) (*Config, error) {
		var c Config
		_, err := c.Prepare(base, extra)
		return &c, err
	}
	c, err := prepare(map[string]interface{}{"arch": "arm64", "efi_firmware_code": good, "efi_firmware_vars": good, "qemu_binary": "true"})
	if err != nil {
		t.Fatalf("arm64: %v", err)
	}
	if c.Firmware != "uefi" || c.MachineType != "virt" {
		t.Errorf("arm64 defaults: firmware %q machine %q, want uefi virt", c.Firmware, c.MachineType)
	}
	if _, err := prepare(map[string]interface{}{"arch": "arm64", "firmware": "bios", "qemu_binary": "true"}); err == nil ||
		!strings.Contains(err.Error(), `firmware: "bios"`) || !strings.Contains(err.Error(), "arm64") {
		t.Errorf("arm64 with bios: %v", err)
	}
	if _, err := prepare(map[string]interface{}{"arch": "riscv64"}); err == nil || !strings.Contains(err.Error(), `arch: "riscv64"`) {
		t.Errorf("unknown arch: %v", err)
	}
	// Missing packages are named (PATH without QEMU; firmware paths absent).
	t.Setenv("PATH", dir)
	saved := machineProfiles["arm64"]
	p := saved
	p.EFICode, p.EFIVars = []string{filepath.Join(dir, "none")}, []string{filepath.Join(dir, "none")}
	machineProfiles["arm64"] = p
	defer func() { machineProfiles["arm64"] = saved }()
	_, err = prepare(map[string]interface{}{"arch": "arm64"})
	if err == nil || !strings.Contains(err.Error(), "qemu_binary") || !strings.Contains(err.Error(), "apt-get install qemu-system-arm") ||
		!strings.Contains(err.Error(), "apt-get install qemu-efi-aarch64") {
		t.Errorf("arm64 without QEMU and AAVMF: %v", err)
	}
}

func TestPadFirmware(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "QEMU_EFI.fd")
	os.WriteFile(src, []byte("firmware"), 0o644)
	dst := filepath.Join(dir, "padded.fd")
	if err := padFirmware(src, dst, 4096); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(dst)
	if len(b) != 4096 || string(b[:8]) != "firmware" || b[4095] != 0 {
		t.Errorf("padded copy: %d bytes, starts %q", len(b), b[:8])
	}
	if short, _ := needsPadding(dst, 4096); short {
		t.Error("a padded file still needs padding")
	}
	if err := padFirmware(src, dst, 4); err == nil {
		t.Error("a firmware larger than the flash was accepted")
	}
}

// An oci:// source passes Prepare with a sha256 checksum or none; the
// registry options are checked with their names.
func TestPrepareOCISource(t *testing.T) {
	for _, tc := range []struct {
		set  map[string]interface{}
		want string
	}{
		{set: map[string]interface{}{"iso_checksum": "sha256:" + strings.Repeat("a", 64)}},
		{set: map[string]interface{}{"iso_checksum": "none", "plain_http": true}},
		{set: map[string]interface{}{"iso_checksum": "none", "password": "secret"}, want: "password: set username too"},
		{set: map[string]interface{}{"iso_checksum": "none", "ca_file": "/nonexistent/ca.pem"}, want: "ca_file:"},
	} {
		raw := testConfig(t)
		raw["iso_url"] = "oci://registry.example.org/team/nodes@sha256:" + strings.Repeat("b", 64)
		for k, v := range tc.set {
			raw[k] = v
		}
		var c Config
		_, err := c.Prepare(raw)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.set, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: err %v, want %q", tc.set, err, tc.want)
		case tc.want != "" && strings.Contains(err.Error(), "secret"):
			t.Errorf("the password is in the error: %v", err)
		}
	}
}
