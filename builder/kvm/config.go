//go:generate go tool packer-sdc mapstructure-to-hcl2 -type Config
//go:generate go tool packer-sdc struct-markdown

package kvm

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/common"
	"github.com/hashicorp/packer-plugin-sdk/communicator"
	"github.com/hashicorp/packer-plugin-sdk/multistep/commonsteps"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/shutdowncommand"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"
	"golang.org/x/crypto/ssh"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/cidata"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/ociconfig"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/signing"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/unknown"
)

// Config is the configuration of the cloudimg-kvm builder. Options that the
// stock `qemu` builder also has keep its names and meaning; the differences
// are documented per option.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`
	// The source cloud image (`iso_url`, `iso_urls`, `iso_checksum`, …) is
	// downloaded, cached and verified exactly like the stock builder's
	// `disk_image = true` source: it is a disk image, not an installer ISO.
	commonsteps.ISOConfig  `mapstructure:",squash"`
	commonsteps.HTTPConfig `mapstructure:",squash"`
	// Accepted for templates ported from the stock builder: with
	// `cd_label = "cidata"`, the `user-data`, `meta-data`, `network-config` and
	// `vendor-data` found in `cd_content`/`cd_files` feed the generated seed
	// (their user-data is merged like `user_data`), and a warning names the
	// native options to use instead. No host ISO tool is needed.
	commonsteps.CDConfig           `mapstructure:",squash"`
	shutdowncommand.ShutdownConfig `mapstructure:",squash"`
	Comm                           communicator.Config `mapstructure:",squash"`
	// Registry access for `iso_url = "oci://host/repo@sha256:…"` (an image
	// the cloudimg-oci post-processor pushed, as the cloudimg-repository
	// data source outputs it): the disk is pulled, checked against
	// `iso_checksum` (`sha256:…` or `none`) and its own sha256 annotation,
	// and cached by that sha256 in Packer's cache.
	OCI ociconfig.Config `mapstructure:",squash"`

	// Public keys (PEM files such as `cosign.pub`, or `env://NAME`) one of
	// which must have signed the source image; several let a key be
	// rotated. When set, the Sigstore bundle `<iso_url>.sigstore.json` (for
	// an http(s) URL, `.sigstore.json` added to its path; with `iso_urls`,
	// the first that has one) must verify against the SHA-256 of the
	// downloaded image, as `cosign verify-blob --key …` would — what the
	// `cloudimg-metadata` post-processor writes with `key_file`. An image
	// whose bundle is missing or does not verify stops the build before it
	// boots, with an error naming the image, the key fingerprints tried and
	// what failed. For `iso_url = "oci://…"` the manifest's signature and
	// signed provenance are checked among its referrers in the registry
	// (what `cloudimg-oci` attaches with `key_file`; `cosign verify`'s
	// check) before the disk is pulled; the signed manifest names the
	// disk's digest, which the pull checks. Default: no signature is
	// checked.
	VerifyKey []string `mapstructure:"verify_key"`

	// Directory that receives the image. Default `output-<build name>`.
	// Unlike the stock builder, an existing directory is not an error: several
	// sources may share one directory and differ by `vm_name`; only an
	// existing file of the same name is (removed first with `-force`).
	OutputDir string `mapstructure:"output_directory"`
	// File name of the image inside `output_directory`.
	// Default `packer-<build name>`, like the stock builder. Two builds that
	// would write the same image at the same time (two build-level sources
	// from one `source` block, neither setting `vm_name`) are an error for
	// the second: set `vm_name` per source, e.g. `"${source.name}.qcow2"`.
	VMName string `mapstructure:"vm_name"`
	// Output format: `qcow2` (default) or `raw`.
	Format string `mapstructure:"format"`
	// Size of the disk, e.g. `20G` or `20480M` (a number alone is MiB). The
	// disk is grown only when this is larger than the source image's virtual
	// size; a smaller size is an error. Default: the source image's size
	// (the stock builder's default is 40 GiB). cloud-init's growpart grows the
	// root file system on boot.
	DiskSize string `mapstructure:"disk_size"`
	// QEMU disk interface: `virtio` (default), `virtio-scsi`, `scsi`, `ide`, `sata`.
	DiskInterface string `mapstructure:"disk_interface"`
	// QEMU cache mode of the build disk. Default `unsafe`: guest flushes are
	// ignored, which is safe because a failed build's disk is thrown away
	// and a successful one is powered off cleanly before it is converted.
	// (The stock builder's default is `writeback`.)
	DiskCache string `mapstructure:"disk_cache"`
	// QEMU discard mode: `unmap` (default) or `ignore`. With `unmap`, freed
	// blocks (the reset provisioner runs `fstrim`) shrink the output.
	DiskDiscard string `mapstructure:"disk_discard"`
	// Compress the output qcow2 (`qemu-img convert -c`, with out-of-order
	// writes: `-W`). Smaller, slower to write and a little slower to read.
	DiskCompression bool `mapstructure:"disk_compression"`
	// How `disk_compression` compresses a qcow2 output (its
	// `compression_type`): `zstd` (default) or `zlib`. zstd compressed about
	// five times faster than zlib here, to the same size; only a QEMU that is
	// 5.1 or newer and built with zstd reads it. Choose `zlib` for hosts
	// without one (Debian 11, RHEL 8 and 9.0–9.3, Proxmox VE 7.1 and older:
	// see "Compression" in the builder's documentation).
	DiskCompressionType string `mapstructure:"disk_compression_type"`
	// Do not convert the build disk after the build: the output is the disk
	// the VM ran on (an overlay with `use_backing_file`).
	SkipCompaction bool `mapstructure:"skip_compaction"`
	// Never resize the disk, whatever `disk_size` says.
	SkipResizeDisk bool `mapstructure:"skip_resize_disk"`
	// Build on a qcow2 overlay whose backing file is the cached source image
	// instead of a full copy. Faster start; with `skip_compaction` the output
	// keeps needing the backing file, otherwise the conversion flattens it.
	UseBackingFile bool `mapstructure:"use_backing_file"`

	// Architecture of the guest: `amd64` or `arm64` (Debian's names, as the
	// `cloudimg-image` data source's `arch`). Default: the host's. It picks
	// the machine profile: for `amd64` `qemu-system-x86_64` with machine
	// `pc`, BIOS or UEFI (OVMF, package `ovmf`), the seed on an IDE CD-ROM
	// and the serial console on the first 16550 UART (`ttyS0`); for `arm64`
	// `qemu-system-aarch64` (package `qemu-system-arm`) with machine `virt`,
	// UEFI only (AAVMF, package `qemu-efi-aarch64`: the code and a per-build
	// copy of the variables, padded to the 64 MiB the `virt` flash needs),
	// the seed on a virtio-scsi CD-ROM and the serial console on the PL011
	// UART (`ttyAMA0`). KVM runs only guests of the host's architecture: an
	// `arm64` build on an x86 host is emulated (TCG, slow; see the arm64
	// section of the docs). The data source's `arch` does not set this one;
	// pass it yourself (`arch = data.cloudimg-image.x.arch` or the same
	// variable for both).
	Arch string `mapstructure:"arch"`
	// Number of virtual CPUs. Default 2.
	CPUs int `mapstructure:"cpus"`
	// Memory in MiB. Default 1024.
	Memory int `mapstructure:"memory"`
	// QEMU CPU model (`-cpu`). Default: `host` with KVM; with TCG for arm64
	// `max,pauth-impdef=on` (every feature QEMU emulates, with its cheap
	// pointer authentication: the fastest measured here, tied with
	// `neoverse-n1`, ahead of `cortex-a57`); with TCG for amd64
	// `qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt`, QEMU's default CPU with the
	// x86-64-v2 features that RHEL 9-family images need. Emulating it is
	// faster than `max` (every feature QEMU can emulate): measured here, a
	// Debian 12 guest reached SSH about 20% sooner and Python started about a
	// third faster. Set `max` for a guest that needs more (x86-64-v3, e.g.
	// RHEL 10), or an Intel model only with care: the guest kernel then
	// turns on Meltdown page-table isolation, which is slow to emulate.
	CPUModel string `mapstructure:"cpu_model"`
	// QEMU machine type. Default `pc` (amd64) or `virt` (arm64).
	MachineType string `mapstructure:"machine_type"`
	// `auto` (default): KVM when the guest's `arch` is the host's and KVM
	// really works (/dev/kvm opens read-write, and on x86 the CPU shows vmx
	// or svm, on arm64 /dev/kvm creates a VM), otherwise TCG (software emulation, many times slower) with a
	// message saying so. `kvm` fails with the reason when KVM is unusable;
	// `tcg` forces emulation; `hvf`, `whpx` and `none` are passed to QEMU.
	Accelerator string `mapstructure:"accelerator"`
	// QEMU binary. Default `qemu-system-x86_64` (amd64) or
	// `qemu-system-aarch64` (arm64); validation fails when it is not found.
	QemuBinary string `mapstructure:"qemu_binary"`
	// qemu-img binary. Default `qemu-img`.
	QemuImgBinary string `mapstructure:"qemu_img_binary"`
	// Extra QEMU arguments, appended after the builder's own (each inner
	// list is one option and its value, e.g. `["-device", "virtio-balloon"]`).
	// Unlike the stock builder, they never replace the builder's arguments,
	// so the seed, SSH forward, QMP socket and serial log stay in place.
	QemuArgs [][]string `mapstructure:"qemuargs"`
	// QEMU network device model. Default `virtio-net-pci`.
	NetDevice string `mapstructure:"net_device"`
	// MAC address of the build VM's NIC; the default network-config matches
	// it. Default: a random locally administered address per build.
	MACAddress string `mapstructure:"mac_address"`
	// Accepted for compatibility: the builder always runs QEMU without a
	// display (`-display none`); the serial console goes to a log file.
	Headless bool `mapstructure:"headless"`
	// Lowest host port for the SSH forward, bound to 127.0.0.1. Default 2222.
	HostPortMin int `mapstructure:"host_port_min"`
	// Highest host port for the SSH forward. Default 4444.
	HostPortMax int `mapstructure:"host_port_max"`
	// `bios` (default for amd64) or `uefi` (the only one, and the default,
	// for arm64). With `uefi` the source image needs an EFI
	// system partition with a bootloader at the removable-media path
	// (`EFI/BOOT/BOOTX64.EFI`, arm64: `EFI/BOOT/BOOTAA64.EFI`), as the official Ubuntu and Debian cloud
	// images have. A new VM boots the image with fresh OVMF variables; the
	// build's own variables (boot entries for the build's devices, anything
	// the provisioners set) are delivered beside the image as
	// `<vm_name>.efivars.fd` (in the artifact's files).
	Firmware string `mapstructure:"firmware"`
	// OVMF code image for `firmware = "uefi"` (arm64: AAVMF). Default: the
	// first of the usual Debian/Ubuntu/Fedora paths that exists.
	EFIFirmwareCode string `mapstructure:"efi_firmware_code"`
	// OVMF variables template for `firmware = "uefi"`; copied per build and
	// delivered beside the image. Default: found like `efi_firmware_code`.
	EFIFirmwareVars string `mapstructure:"efi_firmware_vars"`
	// Do not add the `virtio-rng-pci` entropy device (it lets the guest's
	// early boot get entropy without waiting).
	DisableRNG bool `mapstructure:"disable_rng"`
	// Keep the guest's serial console log at this path (it is always
	// written, to a temporary file, and its tail is shown on failures).
	SerialLogFile string `mapstructure:"serial_log_file"`

	// Your own #cloud-config, merged into the generated one: lists such as
	// `users`, `packages`, `runcmd` and `write_files` are combined (the build
	// user stays first), maps are merged, your scalars win except
	// `ssh_pwauth`. Only #cloud-config documents are accepted.
	UserData string `mapstructure:"user_data"`
	// Like `user_data`, read from a file.
	UserDataFile string `mapstructure:"user_data_file"`
	// A network-config (version 1 or 2) for the build VM. Default: DHCP on
	// the NIC matched by its MAC address, which works on Debian (ENI) and
	// Ubuntu (netplan) alike.
	NetworkConfig string `mapstructure:"network_config"`
	// Like `network_config`, read from a file.
	NetworkConfigFile string `mapstructure:"network_config_file"`
	// Optional vendor-data for the seed.
	VendorData string `mapstructure:"vendor_data"`
	// Extra meta-data keys for the seed.
	MetaData map[string]string `mapstructure:"meta_data"`
	// Host name of the build VM. Default `packer-<build name>`. The seed
	// sets it in user-data (`hostname`: the first label, `fqdn`: all of
	// it), not in meta-data `local-hostname`, so that a first `bootcmd`
	// entry can save the source image's `/etc/hostname` and `/etc/hosts`
	// before cloud-init writes the name into them; the
	// `cloudimg-cloudinit-reset` provisioner puts them back and fails if the
	// name is still found under `/etc`. Choose a distinctive name: the
	// reset's check looks for it as a word in every file there. A
	// `hostname` or `fqdn` in `user_data` wins over this option.
	Hostname string `mapstructure:"hostname"`
	// Host key types the guest generates on the build boot (cloud-init
	// `ssh_genkeytypes`). Default `["ed25519"]`: RSA and ECDSA keys are slow
	// to generate under emulation and the reset provisioner deletes host keys
	// anyway, so the image's first real boot creates all of them.
	SSHHostKeyTypes []string `mapstructure:"ssh_host_key_types"`

	// Wait until cloud-init has finished before provisioning
	// (`cloud-init status --wait`). Default true.
	CloudInitWait config.Trilean `mapstructure:"cloud_init_wait"`
	// How long to wait for cloud-init. Default `30m`.
	CloudInitTimeout time.Duration `mapstructure:"cloud_init_timeout"`
	// What a "degraded" cloud-init (exit 2, cloud-init 23.4+: recoverable
	// errors) does to the build: `warn` (default) or `fail`. The warning, or
	// with `fail` the error's first line, names cloud-init's own messages
	// (from `cloud-init status --format json`, e.g. `DEPRECATED: ...`);
	// `cloud-init status --long` and the tail of its output log follow.
	CloudInitDegraded string `mapstructure:"cloud_init_degraded"`

	ctx interpolate.Context
	// seed is the seed's input derived from the options by Prepare (once);
	// stepSeed reads it.
	seed seedInput
	// verifyKeys are the verify_key keys, loaded by Prepare.
	verifyKeys []*signing.PublicKey
}

// Prepare decodes raws into c, fills the defaults for a cloud image and
// returns warnings and every configuration error, each naming its field.
func (c *Config) Prepare(raws ...interface{}) ([]string, error) {
	err := config.Decode(c, &config.DecodeOpts{
		PluginType:         BuilderID,
		Interpolate:        true,
		InterpolateContext: &c.ctx,
		InterpolateFilter: &interpolate.RenderFilter{
			Exclude: []string{"qemuargs", "shutdown_command"},
		},
	}, raws...)
	if err != nil {
		return nil, err
	}

	var errs *packersdk.MultiError
	var warnings []string
	add := func(format string, a ...any) { errs = packersdk.MultiErrorAppend(errs, fmt.Errorf(format, a...)) }

	switch {
	case c.ISOChecksum == "":
		add("iso_checksum: required: the source image's checksum (\"sha256:…\", \"file:<url of a SUMS file>\") or \"none\" to skip the check")
	case c.ISOChecksum == unknown.Value || c.RawSingleISOUrl == unknown.Value:
		// `packer validate` passes a data source's outputs (such as
		// cloudimg-image's url and checksum) as this placeholder: they
		// cannot be checked before the data source runs.
	default:
		isoWarnings, isoErrs := c.ISOConfig.Prepare(&c.ctx)
		warnings = append(warnings, isoWarnings...)
		for _, e := range isoErrs {
			add("iso_url/iso_checksum: %v", e)
		}
	}
	errs = packersdk.MultiErrorAppend(errs, c.OCI.Validate()...)
	c.verifyKeys = nil
	for i, ref := range c.VerifyKey {
		k, err := signing.LoadPublicKey(ref)
		if err != nil {
			add("verify_key[%d]: %v", i, err)
			continue
		}
		c.verifyKeys = append(c.verifyKeys, k)
	}
	errs = packersdk.MultiErrorAppend(errs, c.HTTPConfig.Prepare(&c.ctx)...)
	errs = packersdk.MultiErrorAppend(errs, c.ShutdownConfig.Prepare(&c.ctx)...)

	if c.Comm.Type == "" {
		c.Comm.Type = "ssh"
	}
	if c.Comm.SSHUsername == "" {
		c.Comm.SSHUsername = "packer"
	}
	if c.Comm.SSHHost == "" {
		c.Comm.SSHHost = "127.0.0.1"
	}
	if c.Comm.SSHTimeout == 0 && c.Comm.SSHHandshakeAttempts == 0 {
		// Emulated guests take a minute or more to reach sshd.
		c.Comm.SSHTimeout = 15 * time.Minute
		c.Comm.SSHHandshakeAttempts = 100
	}
	if c.Comm.SSHTemporaryKeyPairType == "" {
		c.Comm.SSHTemporaryKeyPairType = "ed25519"
	}
	errs = packersdk.MultiErrorAppend(errs, c.Comm.Prepare(&c.ctx)...)
	if c.Comm.Type != "ssh" {
		add("communicator: only \"ssh\" is supported by cloudimg-kvm, got %q", c.Comm.Type)
	}
	if c.Comm.SSHPassword != "" {
		warnings = append(warnings, "ssh_password is set: cloudimg-kvm logs in with an ephemeral key and gives the build user no password; the password is ignored")
	}

	if c.OutputDir == "" {
		c.OutputDir = "output-" + c.PackerBuildName
	}
	if c.VMName == "" {
		c.VMName = "packer-" + c.PackerBuildName
	}
	if strings.ContainsAny(c.VMName, `/\`) {
		add("vm_name: %q must be a file name, not a path (use output_directory for the directory)", c.VMName)
	}
	if c.Format == "" {
		c.Format = "qcow2"
	}
	if c.Format != "qcow2" && c.Format != "raw" {
		add("format: %q is not supported; use \"qcow2\" or \"raw\"", c.Format)
	}
	if c.DiskSize != "" {
		if _, err := parseSize(c.DiskSize); err != nil {
			add("disk_size: %v", err)
		}
	}
	if c.DiskInterface == "" {
		c.DiskInterface = "virtio"
	}
	if !oneOf(c.DiskInterface, "virtio", "virtio-scsi", "scsi", "ide", "sata") {
		add("disk_interface: %q is not one of virtio, virtio-scsi, scsi, ide, sata", c.DiskInterface)
	}
	if c.DiskCache == "" {
		c.DiskCache = "unsafe"
	}
	if !oneOf(c.DiskCache, "writethrough", "writeback", "none", "unsafe", "directsync") {
		add("disk_cache: %q is not one of writethrough, writeback, none, unsafe, directsync", c.DiskCache)
	}
	if c.DiskDiscard == "" {
		c.DiskDiscard = "unmap"
	}
	if !oneOf(c.DiskDiscard, "unmap", "ignore") {
		add("disk_discard: %q is not one of unmap, ignore", c.DiskDiscard)
	}
	if c.DiskCompressionType == "" {
		c.DiskCompressionType = "zstd"
	}
	if !oneOf(c.DiskCompressionType, "zstd", "zlib") {
		add("disk_compression_type: %q is not one of zstd, zlib (zlib for hosts whose QEMU is older than 5.1)", c.DiskCompressionType)
	}
	if c.DiskCompression && c.Format == "raw" {
		add("disk_compression: a raw image cannot be compressed; use format = \"qcow2\" or unset disk_compression")
	}
	if c.SkipCompaction && c.DiskCompression {
		warnings = append(warnings, "disk_compression is ignored because skip_compaction is set")
	}
	if c.SkipCompaction && c.Format == "raw" && c.UseBackingFile {
		add("use_backing_file: needs a qcow2 output or a conversion; unset skip_compaction or use format = \"qcow2\"")
	}

	if c.CPUs == 0 {
		c.CPUs = 2
	}
	if c.CPUs < 0 {
		add("cpus: must be positive, got %d", c.CPUs)
	}
	if c.Memory == 0 {
		c.Memory = 1024
	}
	if c.Memory < 128 {
		add("memory: %d MiB is too little for a cloud image; use at least 512", c.Memory)
	}
	if c.Arch == "" {
		c.Arch = defaultArch()
	}
	profile, ok := machineProfiles[c.Arch]
	if !ok {
		add("arch: %q is not one of %s", c.Arch, archNames())
		profile = machineProfiles["amd64"]
	}
	if c.MachineType == "" {
		c.MachineType = profile.MachineType
	}
	if c.Accelerator == "" {
		c.Accelerator = "auto"
	}
	if !oneOf(c.Accelerator, "auto", "kvm", "tcg", "hvf", "whpx", "none") {
		add("accelerator: %q is not one of auto, kvm, tcg, hvf, whpx, none", c.Accelerator)
	}
	if c.QemuBinary == "" {
		c.QemuBinary = profile.QemuBinary
		if _, err := exec.LookPath(c.QemuBinary); err != nil {
			add("qemu_binary: arch = %q needs %s, which is not installed: install it (apt-get install %s) or set qemu_binary", c.Arch, c.QemuBinary, profile.QemuPackage)
		}
	}
	if c.QemuImgBinary == "" {
		c.QemuImgBinary = "qemu-img"
	}
	for i, arg := range c.QemuArgs {
		if len(arg) == 0 {
			add("qemuargs[%d]: empty argument list", i)
		}
	}
	if c.NetDevice == "" {
		c.NetDevice = "virtio-net-pci"
	}
	if c.MACAddress != "" {
		if _, err := parseMAC(c.MACAddress); err != nil {
			add("mac_address: %v", err)
		}
	}
	if c.HostPortMin == 0 {
		c.HostPortMin = 2222
	}
	if c.HostPortMax == 0 {
		c.HostPortMax = 4444
	}
	if c.HostPortMin < 1 || c.HostPortMax > 65535 || c.HostPortMin > c.HostPortMax {
		add("host_port_min/host_port_max: %d..%d is not a valid port range", c.HostPortMin, c.HostPortMax)
	}
	if c.Firmware == "" {
		c.Firmware = profile.DefaultFirmware
	}
	switch c.Firmware {
	case "bios":
		if !profile.BIOS {
			add("firmware: \"bios\" does not exist for arch = %q, which boots UEFI only: use firmware = \"uefi\" (its default)", c.Arch)
		}
	case "uefi":
		if c.EFIFirmwareCode == "" {
			c.EFIFirmwareCode = firstExisting(profile.EFICode)
		}
		if c.EFIFirmwareVars == "" {
			c.EFIFirmwareVars = firstExisting(profile.EFIVars)
		}
		if c.EFIFirmwareCode == "" || c.EFIFirmwareVars == "" {
			add("firmware: \"uefi\" for arch = %q needs its UEFI firmware: install it (apt-get install %s) or set efi_firmware_code and efi_firmware_vars", c.Arch, profile.EFIPackage)
		}
	default:
		add("firmware: %q is not one of bios, uefi", c.Firmware)
	}
	if c.Hostname == "" {
		c.Hostname = "packer-" + c.PackerBuildName
	}

	if c.UserData != "" && c.UserDataFile != "" {
		add("user_data and user_data_file: set one, not both")
	}
	if c.UserDataFile != "" {
		if err := readable(c.UserDataFile); err != nil {
			add("user_data_file: %v", err)
		}
	}
	if c.NetworkConfig != "" && c.NetworkConfigFile != "" {
		add("network_config and network_config_file: set one, not both")
	}
	if c.NetworkConfigFile != "" {
		if err := readable(c.NetworkConfigFile); err != nil {
			add("network_config_file: %v", err)
		}
	}
	if len(c.SSHHostKeyTypes) == 0 {
		c.SSHHostKeyTypes = []string{"ed25519"}
	}
	for _, t := range c.SSHHostKeyTypes {
		if !oneOf(t, "ed25519", "rsa", "ecdsa", "dsa") {
			add("ssh_host_key_types: %q is not one of ed25519, rsa, ecdsa", t)
		}
	}

	if c.CDLabel != "" || len(c.CDContent) > 0 || len(c.CDFiles) > 0 {
		w, err := c.legacySeedCheck()
		warnings = append(warnings, w...)
		if err != nil {
			errs = packersdk.MultiErrorAppend(errs, err)
		}
	}

	if errs == nil || len(errs.Errors) == 0 {
		// Build the seed once with a placeholder key, so that bad user data
		// or network config fails `packer validate`, naming the option.
		seed, err := deriveSeed(c)
		if err == nil {
			c.seed = seed
			_, err = cidata.Build(seed.withBuild(placeholderKey(), cidata.NewInstanceID(), "52:54:00:00:00:01"))
		}
		if err != nil {
			errs = packersdk.MultiErrorAppend(errs, err)
		}
	}

	if c.CloudInitTimeout == 0 {
		c.CloudInitTimeout = 30 * time.Minute
	}
	if c.CloudInitDegraded == "" {
		c.CloudInitDegraded = "warn"
	}
	if !oneOf(c.CloudInitDegraded, "warn", "fail") {
		add("cloud_init_degraded: %q is not one of warn, fail", c.CloudInitDegraded)
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 5 * time.Minute
	}

	if errs != nil && len(errs.Errors) > 0 {
		return warnings, errs
	}
	return warnings, nil
}

// legacySeedCheck validates the stock builder's cd_* seed options that this
// builder accepts for compatibility.
func (c *Config) legacySeedCheck() ([]string, error) {
	if !strings.EqualFold(c.CDLabel, "cidata") {
		return nil, fmt.Errorf("cd_label: %q: cloudimg-kvm makes no extra CD; cd_content/cd_files are only accepted as a cloud-init seed with cd_label = \"cidata\"", c.CDLabel)
	}
	if c.UserData != "" || c.UserDataFile != "" || c.NetworkConfig != "" || c.NetworkConfigFile != "" {
		return nil, errors.New("cd_content/cd_files: a cidata seed given both by cd_* and by user_data/network_config options; keep only the native options")
	}
	for _, f := range c.CDFiles {
		if err := readable(f); err != nil {
			return nil, fmt.Errorf("cd_files: %v", err)
		}
	}
	return []string{"cd_label = \"cidata\" with cd_content/cd_files: cloudimg-kvm generates the seed itself and merges these files into it; " +
		"prefer user_data/user_data_file, network_config/network_config_file, meta_data and vendor_data, and drop any password and the cloud-init wait provisioner"}, nil
}

// placeholderKey is a syntactically valid public key for validating the seed.
func placeholderKey() string {
	pub, err := ssh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))
	if err != nil {
		panic(err)
	}
	return string(ssh.MarshalAuthorizedKey(pub))
}

func firstExisting(paths []string) string {
	if runtime.GOOS != "linux" {
		return ""
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", path, err)
	}
	return f.Close()
}

func oneOf(s string, choices ...string) bool { return slices.Contains(choices, s) }
