//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// netShape is how a VM booted by bootVM gets its network.
type netShape int

const (
	// netAuto alternates between netMatchMAC and netNone from one boot to
	// the next, so that both shapes get exercised across the suite.
	netAuto netShape = iota
	// netMatchMAC writes a version 1 network-config: DHCP on the NIC whose
	// MAC address is the VM's.
	netMatchMAC
	// netNone writes no network-config: cloud-init's fallback (DHCP on the
	// first NIC) applies.
	netNone
)

func (n netShape) String() string {
	switch n {
	case netMatchMAC:
		return "network-config matching the MAC"
	case netNone:
		return "no network-config"
	}
	return "auto"
}

// seedKind is the seed a VM booted by bootVM gets: the harness's own, or one
// written the way a consumer of the image writes it. Every kind gives the
// guest a fresh ed25519 key of the VM (vm.KeyPath); what else it gives, and
// so what the guest must show, is in the vm's User, Hostname, InstanceID and
// NICName (checkConsumerBoot, consumer_test.go, judges the boot by them).
type seedKind int

const (
	// seedHarness is the harness's NoCloud seed: user-data creates
	// vmOptions.User with passwordless sudo and the key; meta-data has the
	// instance-id and local-hostname; network-config per vmOptions.Network.
	seedHarness seedKind = iota
	// seedNoCloudEmptyMeta is NoCloud with an EMPTY meta-data (no
	// instance-id, no hostname) and no network-config, as virt-install
	// --cloud-init and Terraform's libvirt provider 0.8 write it; user-data
	// is the harness's (vmOptions.User). cloud-init then uses
	// DataSourceNoCloud's default instance-id "nocloud", and the hostname
	// stays the image's own.
	seedNoCloudEmptyMeta
	// seedConfigDrive is an OpenStack ConfigDrive as Proxmox (configdrive2),
	// OpenStack and KubeVirt write it: an ISO labelled config-2 with
	// openstack/latest/meta_data.json (uuid = the instance-id, hostname,
	// public_keys) and network_data.json (DHCP on the NIC found by its MAC);
	// no user_data. The key goes to the image's default user (vmOptions.User,
	// default "debian").
	seedConfigDrive
	// seedNoCloudNetV1Eth0 is NoCloud in Proxmox's nocloud style: a version 1
	// network-config naming the NIC eth0 by its MAC (DHCP, a nameserver
	// entry), meta-data with instance-id and local-hostname, the harness's
	// user-data. The guest's NIC must be named eth0.
	seedNoCloudNetV1Eth0
	// seedNoCloudDefaultUser is the example of cloud-init's NoCloud docs:
	// meta-data instance-id iid-local01 (and local-hostname), user-data with
	// no users list, only a top-level ssh_authorized_keys, which goes to the
	// image's default user (vmOptions.User, default "debian").
	seedNoCloudDefaultUser
	// seedVirtInstall is not a seed the harness writes: the VM is created by
	// real libvirt with `virt-install --import --cloud-init ssh-key=FILE`
	// (vm_libvirt_test.go). virt-install 4.1's ssh-key is an alias of
	// root-ssh-key: its user-data lists only root with the key (so the
	// default user is not created) and its meta-data is empty (instance-id
	// "nocloud", no hostname); it also puts "ds=nocloud" in the SMBIOS
	// serial and takes the seed away after the first boot.
	seedVirtInstall
	// seedTerraform is not a seed the harness writes either: the VM is a
	// domain that example/terraform made with Terraform's libvirt provider
	// (its libvirt_cloudinit_disk: meta-data with the instance-id and
	// local-hostname, user-data creating the user with the key), attached
	// to a vm by attachTerraformNode (scenario_terraform_test.go).
	seedTerraform
)

func (k seedKind) String() string {
	switch k {
	case seedHarness:
		return "harness"
	case seedNoCloudEmptyMeta:
		return "nocloud-empty-meta"
	case seedConfigDrive:
		return "configdrive"
	case seedNoCloudNetV1Eth0:
		return "nocloud-netv1-eth0"
	case seedNoCloudDefaultUser:
		return "nocloud-default-user"
	case seedVirtInstall:
		return "virt-install"
	case seedTerraform:
		return "terraform"
	}
	return fmt.Sprintf("seedKind(%d)", int(k))
}

// nocloudDefaultInstanceID is the instance-id cloud-init's NoCloud
// datasource uses when meta-data has none (DataSourceNoCloud._get_data's
// defaults, cloud-init 22.4 to 25.x).
const nocloudDefaultInstanceID = "nocloud"

// vmOptions configures bootVM. The zero value is a good default: the
// harness's seed with a user "tester" with passwordless sudo and a fresh
// ed25519 key, and a fresh instance-id, hostname and MAC address.
type vmOptions struct {
	// Seed is the kind of seed (default seedHarness: the harness's own).
	Seed seedKind
	// User is the login user: the user the seed creates (seedHarness,
	// seedNoCloudEmptyMeta, seedNoCloudNetV1Eth0; default "tester"), or the
	// image's default user that the seed's key goes to (seedConfigDrive,
	// seedNoCloudDefaultUser; default "debian"). seedVirtInstall ignores it:
	// virt-install gives the key to root.
	User string
	// Hostname is the seed's hostname (meta-data local-hostname, ConfigDrive
	// hostname); default "e2e-<random>". Seeds without one ignore it.
	Hostname string
	// InstanceID is the seed's instance-id (the ConfigDrive uuid); default
	// "iid-e2e-<random>", a random UUID for seedConfigDrive, iid-local01 for
	// seedNoCloudDefaultUser. Seeds without one ignore it.
	InstanceID string
	MAC        string   // NIC MAC address; default 52:54:00:<random>
	Network    netShape // seedHarness only; default netAuto
	// ExtraUserData is appended to the seed's #cloud-config (top-level keys
	// other than users and ssh_pwauth). For seedConfigDrive it becomes the
	// drive's user_data; seedVirtInstall ignores it.
	ExtraUserData string
	CPUs          int  // default 2
	MemoryMiB     int  // default 1024
	NoWaitSSH     bool // return as soon as QEMU runs, without waiting for SSH
	// UEFI boots with UEFI firmware (OVMF) instead of the BIOS, with fresh
	// UEFI variables, as a new VM made from the image starts.
	UEFI bool
	// Arch is the guest's architecture, a key of guestMachines: "amd64"
	// (default) or "arm64" (always UEFI; emulated unless the host is arm64).
	Arch string
	// Machine is the libvirt machine type of a seedVirtInstall VM: default
	// "q35", what virt-install picks for a current Linux. "pc" (i440fx: an
	// IDE CD-ROM) for guest kernels without SATA AHCI, such as Debian 12's
	// cloud kernel, which cannot read virt-install's seed on q35.
	Machine string
}

// guestMachine is how the harness boots a guest of one architecture: the one
// place that knows QEMU's binary, machine, CPU, seed device and firmware per
// arch (the builder's own table is builder/kvm's machineProfiles).
type guestMachine struct {
	qemu    string
	machine string
	tcgCPU  string // -cpu under TCG (KVM: host)
	// seedArgs attaches the seed ISO as a CD-ROM.
	seedArgs func(seed string) []string
	// uefi is the firmware when the machine boots only UEFI (nil: BIOS
	// unless vmOptions.UEFI).
	uefi func(t testing.TB) (code, vars string)
}

var guestMachines = map[string]guestMachine{
	"amd64": {
		qemu: "qemu-system-x86_64", machine: "pc",
		tcgCPU: "qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt",
		seedArgs: func(seed string) []string {
			return []string{"-drive", "file=" + qemuOpt(seed) + ",media=cdrom,readonly=on"}
		},
	},
	"arm64": {
		qemu: "qemu-system-aarch64", machine: "virt",
		tcgCPU: "max,pauth-impdef=on", // the builder's default under TCG
		seedArgs: func(seed string) []string { // virt has no IDE
			return []string{"-device", "virtio-scsi-pci,id=scsi0",
				"-drive", "file=" + qemuOpt(seed) + ",if=none,id=seed,media=cdrom,readonly=on,format=raw",
				"-device", "scsi-cd,drive=seed,bus=scsi0.0"}
		},
		uefi: aavmf,
	},
}

// machineFor returns the guestMachine of arch ("" is amd64).
func machineFor(t testing.TB, arch string) guestMachine {
	if arch == "" {
		arch = "amd64"
	}
	m, ok := guestMachines[arch]
	if !ok {
		t.Fatalf("no guest machine for arch %q", arch)
	}
	return m
}

// aavmf returns Debian's AAVMF code and variables template (qemu-efi-aarch64,
// both already the 64 MiB the virt machine's flash wants).
func aavmf(t testing.TB) (code, vars string) {
	code, vars = "/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"
	if _, err := os.Stat(code); err != nil {
		t.Fatal("no AAVMF firmware: install the qemu-efi-aarch64 package (make deps)")
	}
	return code, vars
}

// ovmf returns the OVMF code image and variables template the harness boots
// UEFI guests with: the first pair that exists of the builder's defaults on
// Debian/Ubuntu.
func ovmf(t testing.TB) (code, vars string) {
	for _, p := range [][2]string{
		{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"},
		{"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"},
	} {
		if _, err := os.Stat(p[0]); err == nil {
			return p[0], p[1]
		}
	}
	t.Fatal("no OVMF firmware: install the ovmf package (make deps)")
	return "", ""
}

// vm is a QEMU guest booted by bootVM from an image, through a qcow2
// overlay, with a seed of its own (no plugin involved); or, for
// seedVirtInstall, a libvirt domain made by virt-install from a copy of the
// image.
type vm struct {
	t         testing.TB
	Dir       string // kept after the run: seed files, logs, key
	SerialLog string // the guest's serial console
	QemuLog   string // QEMU's own stdout/stderr (libvirt: its domain log)
	Overlay   string // qcow2 the guest writes to: an overlay, or for libvirt a copy of the image (removed when the test passed)
	KeyPath   string // the user's private key (OpenSSH format), for ssh/ansible
	Seed      seedKind
	User      string // the login user the seed gives the key to
	// Hostname is the hostname the seed gives; "" when it gives none (the
	// guest then keeps the image's own).
	Hostname   string
	InstanceID string // the instance-id cloud-init must find for this seed
	NICName    string // the NIC name the seed asks for; "" for the guest's own
	MAC        string
	Network    netShape
	SSHPort    int
	Accel      string
	CPUs       int
	Arch       string // guestMachines key; "" is amd64
	// KnownDegraded lists substrings of cloud-init recoverable errors that
	// the seed itself causes (not the image): checkConsumerBoot logs those
	// instead of failing. virt-install 4.1 writes the deprecated
	// users[].ssh-authorized-keys.
	KnownDegraded []string
	Started       time.Time // when QEMU (or the domain) started
	FirstLogin    time.Time // when the first SSH login succeeded

	signer  ssh.Signer
	qmpDir  string
	qmpSock string
	proc    *qemuProc      // the running QEMU; read it through process()
	dom     *libvirtDomain // seedVirtInstall: the libvirt domain

	mu       sync.Mutex
	client   *ssh.Client
	hostKeys []ssh.PublicKey // the host keys presented, each change appended
	stopOnce sync.Once
	stopErr  error
	sshErr   error // why the wait for the first login failed, if it did
}

// kernelStartRe matches the line each Linux boot prints first; printkTimeRe
// a console line's timestamp (seconds since that boot). Console lines may
// start with a carriage return.
var (
	kernelStartRe = regexp.MustCompile(`(?m)^\r?(\[ *[0-9.]+\] )?Linux version `)
	printkTimeRe  = regexp.MustCompile(`(?m)^\r?\[ *([0-9]+\.[0-9]+)\]`)
)

// diagnose says, in one line, where a (failed) guest stands: QEMU's run
// state (QMP query-status), how many kernel boots the serial console saw,
// the last console timestamp against QEMU's own time up, and the first
// login or why it never came. A guest up 10 minutes whose kernel says 30 s
// started late or restarted; "paused" means QEMU stopped it (e.g. ENOSPC).
func (v *vm) diagnose() string {
	var parts []string
	if v.dom == nil && v.qmpSock != "" {
		if p := v.process(); p != nil {
			select {
			case <-p.exited:
				parts = append(parts, fmt.Sprintf("QEMU exited (%v)", p.err))
			default:
				if raw, err := qmp(v.qmpSock, "query-status", nil, 5*time.Second); err != nil {
					parts = append(parts, fmt.Sprintf("QMP query-status: %v", err))
				} else {
					var st struct {
						Status string `json:"status"`
					}
					_ = json.Unmarshal(raw, &st)
					parts = append(parts, "QEMU status "+st.Status)
				}
			}
		}
	}
	serial, _ := os.ReadFile(v.SerialLog)
	parts = append(parts, fmt.Sprintf("%d kernel boot(s) on the serial console (%d bytes)", len(kernelStartRe.FindAll(serial, -1)), len(serial)))
	if m := printkTimeRe.FindAllSubmatch(serial, -1); len(m) > 0 {
		parts = append(parts, fmt.Sprintf("last console timestamp %ss", m[len(m)-1][1]))
	}
	v.mu.Lock()
	started, login, sshErr := v.Started, v.FirstLogin, v.sshErr
	v.mu.Unlock()
	if !started.IsZero() {
		parts = append(parts, fmt.Sprintf("QEMU up %s", time.Since(started).Round(time.Second)))
	}
	switch {
	case !login.IsZero():
		parts = append(parts, fmt.Sprintf("first SSH login %s after start", login.Sub(started).Round(100*time.Millisecond)))
	case sshErr != nil:
		parts = append(parts, fmt.Sprintf("no SSH login: %v", firstLine(sshErr.Error())))
	}
	return strings.Join(parts, "; ")
}

// firstLine is s up to its first newline.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

var netShapeCounter atomic.Int64

// bootVM boots img (a qcow2, never written to) under QEMU through an overlay
// in a new directory of the test, with a new NoCloud seed ISO, and (unless
// opts.NoWaitSSH) waits until the user can log in by SSH. The VM is stopped
// when the test ends, whether it passes, fails or panics.
func bootVM(t testing.TB, img string, opts vmOptions) *vm {
	t.Helper()
	img, err := filepath.Abs(img)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(img); err != nil {
		t.Fatalf("bootVM: %v", err)
	}
	if opts.User == "" {
		switch opts.Seed {
		case seedConfigDrive, seedNoCloudDefaultUser:
			opts.User = "debian"
		default:
			opts.User = "tester"
		}
	}
	suffix := randHex(3)
	if opts.Hostname == "" {
		opts.Hostname = "e2e-" + suffix
	}
	if opts.InstanceID == "" {
		switch opts.Seed {
		case seedConfigDrive:
			opts.InstanceID = randUUID()
		case seedNoCloudDefaultUser:
			opts.InstanceID = "iid-local01"
		default:
			opts.InstanceID = "iid-e2e-" + suffix + randHex(3)
		}
	}
	if opts.MAC == "" {
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		opts.MAC = fmt.Sprintf("52:54:00:%02x:%02x:%02x", b[0], b[1], b[2])
	}
	if opts.Seed != seedHarness {
		opts.Network = netNone // the seed kind decides
	} else if opts.Network == netAuto {
		if netShapeCounter.Add(1)%2 == 1 {
			opts.Network = netMatchMAC
		} else {
			opts.Network = netNone
		}
	}
	if opts.CPUs == 0 {
		opts.CPUs = 2
	}
	if opts.MemoryMiB == 0 {
		opts.MemoryMiB = 1024
	}

	dir := testDir(t)
	v := &vm{
		t: t, Dir: dir,
		SerialLog:  filepath.Join(dir, "serial.log"),
		QemuLog:    filepath.Join(dir, "qemu.log"),
		Overlay:    filepath.Join(dir, "overlay.qcow2"),
		KeyPath:    filepath.Join(dir, "id_ed25519"),
		Seed:       opts.Seed,
		User:       opts.User,
		Hostname:   opts.Hostname,
		InstanceID: opts.InstanceID,
		MAC:        opts.MAC,
		Network:    opts.Network,
		Accel:      acceleratorFor(opts.Arch),
		CPUs:       opts.CPUs,
		Arch:       opts.Arch,
	}
	switch opts.Seed {
	case seedNoCloudEmptyMeta:
		v.Hostname, v.InstanceID = "", nocloudDefaultInstanceID
	case seedNoCloudNetV1Eth0:
		v.NICName = "eth0"
	case seedVirtInstall:
		v.User, v.Hostname, v.InstanceID = "root", "", nocloudDefaultInstanceID
		v.KnownDegraded = []string{"users.0.ssh-authorized-keys"}
		v.QemuLog = ""
	}

	if opts.Seed != seedVirtInstall {
		v.createOverlay(img)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if v.signer, err = ssh.NewSignerFromKey(priv); err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	authorized := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub)))
	pemBlock, err := ssh.MarshalPrivateKey(priv, "e2e "+opts.User)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, v.KeyPath, pem.EncodeToMemory(pemBlock), 0o600)
	writeFile(t, v.KeyPath+".pub", []byte(authorized+" e2e\n"), 0o644)

	if opts.Seed == seedVirtInstall {
		v.bootLibvirt(img, opts)
		return v
	}
	seed := v.writeSeed(opts, authorized)

	v.qmpDir, err = os.MkdirTemp("", "e2e-qmp-") // unix socket paths are short
	if err != nil {
		t.Fatal(err)
	}
	v.qmpSock = filepath.Join(v.qmpDir, "qmp.sock")

	t.Cleanup(func() {
		// On failure, the guest is looked at before it is powered off (the
		// power-off would push where it stood out of the serial tail), and
		// the account ends with one line that fits any excerpt of the log.
		var state string
		if t.Failed() {
			state = v.diagnose()
			if s := tailFile(v.SerialLog, 60); s != "" {
				t.Logf("test failed; last 60 lines of %s (before power-off):\n%s", v.SerialLog, s)
			}
		}
		if err := v.Stop(); err != nil {
			t.Logf("stopping the VM: %v", err)
		}
		os.RemoveAll(v.qmpDir)
		if !t.Failed() {
			os.Remove(v.Overlay)
		}
		if state != "" {
			t.Logf("VM at the failure: %s", state)
		}
	})

	v.start(opts, seed)
	network := v.Network.String()
	if v.Seed != seedHarness {
		network = "network as the seed kind gives it"
	}
	t.Logf("VM booting %s (overlay), accel %s, %d vCPU, seed %s, ssh %s@127.0.0.1:%d, hostname %s, instance-id %s, MAC %s, %s; dir %s",
		img, v.Accel, v.CPUs, v.Seed, v.User, v.SSHPort, orNone(v.Hostname), v.InstanceID, v.MAC, network, dir)
	if !opts.NoWaitSSH {
		if err := v.waitSSH(); err != nil {
			t.Fatalf("SSH: %v", err)
		}
	}
	return v
}

// createOverlay creates the VM's qcow2 overlay on img.
func (v *vm) createOverlay(img string) {
	v.t.Helper()
	os.Remove(v.Overlay)
	if out, err := runLogged(v.Dir, nil, "qemu-img", "create", "-q", "-f", "qcow2", "-b", img, "-F", "qcow2", v.Overlay); err != nil {
		v.t.Fatalf("qemu-img create overlay: %v\n%s", err, out)
	}
}

// qemuProc is one QEMU process.
type qemuProc struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when QEMU has exited
	err    error         // its exit error, once exited is closed
}

func writeFile(t testing.TB, path string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, b, mode); err != nil {
		t.Fatal(err)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// orNone is s, or "(none)" when s is empty.
func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// randUUID returns a random (version 4) UUID.
func randUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// harnessUserData is the #cloud-config of the harness's seed: it creates
// user with passwordless sudo and the key, then opts.ExtraUserData.
func harnessUserData(opts vmOptions, authorizedKey string) string {
	return fmt.Sprintf(`#cloud-config
users:
  - name: %s
    shell: /bin/bash
    sudo: "ALL=(ALL) NOPASSWD:ALL"
    lock_passwd: true
    ssh_authorized_keys:
      - %s
ssh_pwauth: false
`, opts.User, authorizedKey) + extraUserData(opts)
}

func extraUserData(opts vmOptions) string {
	if opts.ExtraUserData == "" {
		return ""
	}
	return strings.TrimSpace(opts.ExtraUserData) + "\n"
}

// writeSeed writes the seed's files for opts.Seed into <dir>/seed and makes
// the ISO from them with genisoimage (Joliet + Rock Ridge, as cloud-init
// needs and the consumers' tools write it); it returns the ISO's path.
func (v *vm) writeSeed(opts vmOptions, authorizedKey string) string {
	t := v.t
	t.Helper()
	seedDir := filepath.Join(v.Dir, "seed")
	if err := os.MkdirAll(seedDir, 0o755); err != nil {
		t.Fatal(err)
	}
	put := func(name, content string) {
		p := filepath.Join(seedDir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, p, []byte(content), 0o644)
	}
	mac := strings.ToLower(opts.MAC)
	label := "cidata"
	switch opts.Seed {
	case seedHarness:
		put("user-data", harnessUserData(opts, authorizedKey))
		put("meta-data", fmt.Sprintf("instance-id: %s\nlocal-hostname: %s\n", opts.InstanceID, opts.Hostname))
		if opts.Network == netMatchMAC {
			// Quoted: an unquoted MAC can read as a sexagesimal number in YAML 1.1.
			put("network-config", fmt.Sprintf(`version: 1
config:
  - type: physical
    name: eth0
    mac_address: "%s"
    subnets:
      - type: dhcp
`, mac))
		}
	case seedNoCloudEmptyMeta:
		put("user-data", harnessUserData(opts, authorizedKey))
		put("meta-data", "")
	case seedNoCloudNetV1Eth0:
		put("user-data", harnessUserData(opts, authorizedKey))
		put("meta-data", fmt.Sprintf("instance-id: %s\nlocal-hostname: %s\n", opts.InstanceID, opts.Hostname))
		// As Proxmox VE writes it (PVE::QemuServer::Cloudinit, nocloud);
		// 10.0.2.3 is QEMU's user-network DNS address inside the guest.
		put("network-config", fmt.Sprintf(`version: 1
config:
    - type: physical
      name: eth0
      mac_address: '%s'
      subnets:
      - type: dhcp4
    - type: nameserver
      address:
      - '10.0.2.3'
      search:
      - 'example.invalid'
`, mac))
	case seedNoCloudDefaultUser:
		put("user-data", "#cloud-config\nssh_authorized_keys:\n  - "+authorizedKey+"\n"+extraUserData(opts))
		put("meta-data", fmt.Sprintf("instance-id: %s\nlocal-hostname: %s\n", opts.InstanceID, opts.Hostname))
	case seedConfigDrive:
		label = "config-2"
		md, err := json.MarshalIndent(map[string]any{
			"uuid":              opts.InstanceID,
			"name":              opts.Hostname,
			"hostname":          opts.Hostname,
			"availability_zone": "nova",
			"launch_index":      0,
			"public_keys":       map[string]string{"e2e": authorizedKey},
		}, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		nd, err := json.MarshalIndent(map[string]any{
			"links": []map[string]any{{
				"id": "tap0", "type": "phy", "ethernet_mac_address": mac, "mtu": 1500,
			}},
			"networks": []map[string]any{{
				"id": "network0", "type": "ipv4_dhcp", "link": "tap0", "network_id": randUUID(),
			}},
			"services": []map[string]any{{"type": "dns", "address": "10.0.2.3"}},
		}, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		put("openstack/latest/meta_data.json", string(md)+"\n")
		put("openstack/latest/network_data.json", string(nd)+"\n")
		if ud := extraUserData(opts); ud != "" {
			put("openstack/latest/user_data", "#cloud-config\n"+ud)
		}
	default:
		t.Fatalf("writeSeed: seed kind %s is not written by the harness", opts.Seed)
	}
	iso := filepath.Join(v.Dir, "seed.iso")
	if out, err := runLogged(seedDir, nil, "genisoimage", "-quiet", "-output", iso, "-volid", label, "-joliet", "-rock", "."); err != nil {
		t.Fatalf("genisoimage: %v\n%s", err, out)
	}
	return iso
}

var accel struct {
	once sync.Once
	name string
}

// accelerator is "kvm" when /dev/kvm opens read-write and the CPU shows
// vmx or svm, else "tcg" (a /dev/kvm without them never boots a guest).
// acceleratorFor is the accelerator for a guest of arch: KVM runs only the
// host's architecture, so any other is emulated.
func acceleratorFor(arch string) string {
	if arch == "" || arch == "amd64" {
		return accelerator()
	}
	if arch == runtime.GOARCH {
		if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err == nil {
			f.Close()
			return "kvm"
		}
	}
	return "tcg"
}

func accelerator() string {
	accel.once.Do(func() {
		accel.name = "tcg"
		f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
		if err != nil {
			return
		}
		f.Close()
		b, err := os.ReadFile("/proc/cpuinfo")
		if err == nil && regexp.MustCompile(`(?m)^flags\s*:.*\b(vmx|svm)\b`).Match(b) {
			accel.name = "kvm"
		}
	})
	return accel.name
}

// qemuOpt escapes a value for a QEMU -option key=value list.
func qemuOpt(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// start runs QEMU, retrying with another port when the SSH forward cannot
// bind, and returns once QEMU answers on QMP (all devices exist then).
func (v *vm) start(opts vmOptions, seed string) {
	t := v.t
	t.Helper()
	var lastLog string
	for attempt := 1; attempt <= 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		m := machineFor(t, opts.Arch)
		cpu := m.tcgCPU
		if v.Accel == "kvm" {
			cpu = "host"
		}
		args := []string{
			"-machine", m.machine, "-accel", v.Accel, "-cpu", cpu,
			"-smp", strconv.Itoa(opts.CPUs), "-m", strconv.Itoa(opts.MemoryMiB),
			"-display", "none",
			"-serial", "file:" + v.SerialLog,
			"-device", "virtio-rng-pci",
			"-drive", "file=" + qemuOpt(v.Overlay) + ",if=virtio,cache=unsafe,discard=unmap",
			"-nic", fmt.Sprintf("user,model=virtio-net-pci,mac=%s,restrict=on,hostfwd=tcp:127.0.0.1:%d-:22", v.MAC, port),
			"-pidfile", filepath.Join(v.Dir, "qemu.pid"),
			"-qmp", "unix:" + qemuOpt(v.qmpSock) + ",server=on,wait=off",
		}
		args = append(args, m.seedArgs(seed)...)
		if opts.UEFI || m.uefi != nil {
			firmware := ovmf
			if m.uefi != nil {
				firmware = m.uefi
			}
			code, template := firmware(t)
			vars := filepath.Join(v.Dir, "efivars.fd")
			writeFile(t, vars, mustReadFile(t, template), 0o644)
			args = append(args,
				"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+qemuOpt(code),
				"-drive", "if=pflash,format=raw,unit=1,file="+qemuOpt(vars))
		}
		logf, err := os.Create(v.QemuLog)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(m.qemu, args...)
		cmd.Dir = v.Dir
		cmd.Stdout = logf
		cmd.Stderr = logf
		// If the test binary dies (e.g. go test's timeout panic), so does QEMU.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		writeFile(t, filepath.Join(v.Dir, "qemu.cmdline"), []byte(shellQuote(append([]string{m.qemu}, args...))+"\n"), 0o644)
		if err := cmd.Start(); err != nil {
			logf.Close()
			t.Fatalf("starting QEMU: %v", err)
		}
		p := &qemuProc{cmd: cmd, exited: make(chan struct{})}
		registerVM(cmd)
		go func() {
			p.err = cmd.Wait()
			logf.Close()
			unregisterVM(cmd)
			close(p.exited)
		}()
		err = waitQMP(v.qmpSock, p.exited, time.Minute)
		if err == nil {
			v.setProcess(p)
			v.SSHPort, v.Started = port, time.Now()
			return
		}
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
		b, _ := os.ReadFile(v.QemuLog)
		lastLog = string(b)
		if bytes.Contains(b, []byte("host forwarding")) || bytes.Contains(b, []byte("hostfwd")) {
			t.Logf("QEMU could not forward port %d (attempt %d), trying another: %s", port, attempt, strings.TrimSpace(lastLog))
			continue
		}
		t.Fatalf("QEMU did not start: %v (exit: %v)\n%s", err, p.err, lastLog)
	}
	t.Fatalf("QEMU could not bind a port for the SSH forward after 5 attempts:\n%s", lastLog)
}

// handedPorts are the ports freePort gave out in this run.
var handedPorts struct {
	sync.Mutex
	m map[int]bool
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on, for a
// listener a test starts later (QEMU's hostfwd, a registry). It picks from
// below the kernel's ephemeral range (net.ipv4.ip_local_port_range), which
// the kernel never gives the client side of a connection: a port picked
// from that range (":0") may become the source port of one of the many
// connections a run makes (SSH polls, HTTP) before the listener binds it,
// and the bind then fails (EADDRINUSE). No port is handed out twice in a
// run. Below 10000 ports or on a read error it falls back to ":0".
func freePort() (int, error) {
	handedPorts.Lock()
	defer handedPorts.Unlock()
	if handedPorts.m == nil {
		handedPorts.m = map[int]bool{}
	}
	lo, hi := 10000, 0
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if start, err := strconv.Atoi(f[0]); err == nil {
				hi = start - 1
			}
		}
	}
	for try := 0; hi-lo >= 1000 && try < 100; try++ {
		port := lo + mathrand.IntN(hi-lo+1)
		if handedPorts.m[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		handedPorts.m[port] = true
		return port, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	handedPorts.m[port] = true
	return port, nil
}

func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && !strings.ContainsAny(a, " \t\n'\"\\$`;&|<>()*?[]{}!#~") {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

// live QEMU processes, killed by TestMain if a test left one behind.
var liveVMs struct {
	sync.Mutex
	m map[*exec.Cmd]bool
}

func registerVM(c *exec.Cmd) {
	liveVMs.Lock()
	defer liveVMs.Unlock()
	if liveVMs.m == nil {
		liveVMs.m = map[*exec.Cmd]bool{}
	}
	liveVMs.m[c] = true
}

func unregisterVM(c *exec.Cmd) {
	liveVMs.Lock()
	defer liveVMs.Unlock()
	delete(liveVMs.m, c)
}

// isHarnessVM reports whether pid is a QEMU that bootVM started.
func isHarnessVM(pid int) bool {
	liveVMs.Lock()
	defer liveVMs.Unlock()
	for c := range liveVMs.m {
		if c.Process != nil && c.Process.Pid == pid {
			return true
		}
	}
	return false
}

// killAllVMs kills the QEMU processes and libvirt domains that outlived
// their test (and stops the libvirt daemons this binary started); it
// returns how many VMs there were.
func killAllVMs() int {
	n := killLibvirtDomains()
	liveVMs.Lock()
	defer liveVMs.Unlock()
	for c := range liveVMs.m {
		if c.Process.Kill() == nil {
			n++
		}
	}
	return n
}

// ---------------------------------------------------------------- QMP --

// qmp runs one QMP command on a fresh connection and returns its "return".
func qmp(sock, command string, args any, timeout time.Duration) (json.RawMessage, error) {
	conn, err := net.DialTimeout("unix", sock, timeout)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	r := bufio.NewReader(conn)
	var greeting struct {
		QMP json.RawMessage `json:"QMP"`
	}
	line, err := r.ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("QMP greeting: %w", err)
	}
	if err := json.Unmarshal(line, &greeting); err != nil || greeting.QMP == nil {
		return nil, fmt.Errorf("QMP greeting: unexpected %q", line)
	}
	call := func(cmd string, args any) (json.RawMessage, error) {
		req := map[string]any{"execute": cmd}
		if args != nil {
			req["arguments"] = args
		}
		b, _ := json.Marshal(req)
		if _, err := conn.Write(append(b, '\n')); err != nil {
			return nil, err
		}
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return nil, fmt.Errorf("QMP %s: %w", cmd, err)
			}
			var resp struct {
				Return json.RawMessage `json:"return"`
				Error  *struct {
					Class string `json:"class"`
					Desc  string `json:"desc"`
				} `json:"error"`
				Event string `json:"event"`
			}
			if err := json.Unmarshal(line, &resp); err != nil {
				return nil, fmt.Errorf("QMP %s: %w in %q", cmd, err, line)
			}
			if resp.Event != "" {
				continue
			}
			if resp.Error != nil {
				return nil, fmt.Errorf("QMP %s: %s: %s", cmd, resp.Error.Class, resp.Error.Desc)
			}
			return resp.Return, nil
		}
	}
	if _, err := call("qmp_capabilities", nil); err != nil {
		return nil, err
	}
	return call(command, args)
}

// waitQMP waits until QEMU answers on its QMP socket, which it does only
// after creating every device and backend (so after binding the forward).
func waitQMP(sock string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := qmp(sock, "query-status", nil, 5*time.Second)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("QEMU exited")
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no QMP answer within %s: %v", timeout, err)
		}
	}
}

// ------------------------------------------------------------ lifecycle --

// Exited is closed when QEMU has exited.
func (v *vm) Exited() <-chan struct{} { return v.process().exited }

// process is the guest's current QEMU process (a libvirt domain gets a new
// one when it is started again).
func (v *vm) process() *qemuProc {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.proc
}

func (v *vm) setProcess(p *qemuProc) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.proc = p
}

// Stop powers the guest off by ACPI (QMP system_powerdown) and waits for
// QEMU to exit, killing it after 60 s. It is idempotent and registered
// with t.Cleanup by bootVM. The error says whether a kill was needed.
func (v *vm) Stop() error {
	v.stopOnce.Do(func() {
		v.mu.Lock()
		if v.client != nil {
			v.client.Close()
			v.client = nil
		}
		v.mu.Unlock()
		if v.dom != nil {
			v.stopErr = v.dom.stop(v)
			return
		}
		p := v.process()
		if p == nil {
			return
		}
		select {
		case <-p.exited:
			return
		default:
		}
		start := time.Now()
		if _, err := qmp(v.qmpSock, "system_powerdown", nil, 10*time.Second); err != nil {
			v.t.Logf("QMP system_powerdown: %v", err)
		}
		select {
		case <-p.exited:
			v.t.Logf("VM powered off in %s", time.Since(start).Round(100*time.Millisecond))
		case <-time.After(60 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
			v.stopErr = errors.New("the guest did not power off within 60 s of system_powerdown; QEMU was killed")
		}
	})
	return v.stopErr
}

// ------------------------------------------------------------------ SSH --

const sshPoll = 250 * time.Millisecond

// sshBootDeadline bounds the wait for a login after a boot: 10 minutes, or
// CLOUDIMG_E2E_SSH_DEADLINE (a Go duration) for slow or crowded hosts.
var sshBootDeadline = func() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("CLOUDIMG_E2E_SSH_DEADLINE")); err == nil && d > 0 {
		return d
	}
	return 10 * time.Minute
}()

// HostKey is the host key the guest's sshd presented on the last handshake
// (nil before the first).
func (v *vm) HostKey() ssh.PublicKey {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.hostKeys) == 0 {
		return nil
	}
	return v.hostKeys[len(v.hostKeys)-1]
}

// HostKeys lists the host keys presented during this VM's life, in order
// (a key is listed again only when it comes back after another one).
func (v *vm) HostKeys() []ssh.PublicKey {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]ssh.PublicKey(nil), v.hostKeys...)
}

func (v *vm) recordHostKey(_ string, _ net.Addr, key ssh.PublicKey) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := len(v.hostKeys)
	if n > 0 && bytes.Equal(v.hostKeys[n-1].Marshal(), key.Marshal()) {
		return nil
	}
	if n > 0 {
		v.t.Logf("the guest presents another host key: %s (was %s)", ssh.FingerprintSHA256(key), ssh.FingerprintSHA256(v.hostKeys[n-1]))
	}
	v.hostKeys = append(v.hostKeys, key)
	return nil
}

// WaitSSH waits (sshBootDeadline at most, polling every 250 ms) until an SSH
// handshake and login as the user succeed. The TCP connect alone proves
// nothing: QEMU's user network accepts it before sshd listens.
func (v *vm) WaitSSH() {
	v.t.Helper()
	if err := v.waitSSH(); err != nil {
		v.t.Fatalf("SSH: %v", err)
	}
}

func (v *vm) waitSSH() error {
	start := time.Now()
	deadline := sshBootDeadline
	if v.Arch == "arm64" && v.Accel == "tcg" {
		deadline *= 2 // emulating arm64 on x86 is slower than x86 on x86
	}
	if _, err := v.connected(deadline); err != nil {
		v.mu.Lock()
		v.sshErr = err
		v.mu.Unlock()
		return err
	}
	v.mu.Lock()
	if v.FirstLogin.IsZero() {
		v.FirstLogin = time.Now()
	}
	v.mu.Unlock()
	v.t.Logf("SSH login as %s after %s (host key %s %s)", v.User, time.Since(start).Round(100*time.Millisecond), v.HostKey().Type(), ssh.FingerprintSHA256(v.HostKey()))
	return nil
}

// kernelPanicError is a guest kernel panic seen on the serial console.
type kernelPanicError struct {
	msg string // the panic line and what follows
}

func (e *kernelPanicError) Error() string { return "the guest kernel panicked:\n" + e.msg }

// checkPanic looks for a kernel panic on the serial console.
func (v *vm) checkPanic() error {
	b, err := os.ReadFile(v.SerialLog)
	if err != nil {
		return nil
	}
	i := bytes.Index(b, []byte("Kernel panic - not syncing"))
	if i < 0 {
		return nil
	}
	msg := tailLines(string(b[i:]), 30)
	if len(msg) > 4000 {
		msg = msg[:4000]
	}
	return &kernelPanicError{msg: msg}
}

// connected returns the current SSH client, dialling (with retries until
// wait has passed) if there is none.
func (v *vm) connected(wait time.Duration) (*ssh.Client, error) {
	v.mu.Lock()
	c := v.client
	v.mu.Unlock()
	if c != nil {
		return c, nil
	}
	c, err := v.dial(time.Now().Add(wait))
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	v.client = c
	v.mu.Unlock()
	go v.keepalive(c)
	return c, nil
}

// dropClient forgets c (if it is still the current client) and closes it.
func (v *vm) dropClient(c *ssh.Client) {
	v.mu.Lock()
	if v.client == c {
		v.client = nil
	}
	v.mu.Unlock()
	c.Close()
}

func (v *vm) dial(deadline time.Time) (*ssh.Client, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(v.SSHPort))
	cfg := &ssh.ClientConfig{
		User:            v.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(v.signer)},
		HostKeyCallback: v.recordHostKey,
		HostKeyAlgorithms: []string{
			ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
			ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256,
		},
	}
	var lastErr error
	attempts := 0
	p := v.process()
	for {
		select {
		case <-p.exited:
			return nil, fmt.Errorf("QEMU exited (%v) while waiting for SSH; last error: %v\nlast lines of %s:\n%s",
				p.err, lastErr, v.SerialLog, tailFile(v.SerialLog, 40))
		default:
		}
		if err := v.checkPanic(); err != nil {
			return nil, err
		}
		attempts++
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err == nil {
			// The handshake covers the banner, key exchange and login; a
			// guest that accepts but never answers is given up on after 30 s.
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			var cc ssh.Conn
			var chans <-chan ssh.NewChannel
			var reqs <-chan *ssh.Request
			cc, chans, reqs, err = ssh.NewClientConn(conn, addr, cfg)
			if err == nil {
				_ = conn.SetDeadline(time.Time{})
				return ssh.NewClient(cc, chans, reqs), nil
			}
			conn.Close()
		}
		lastErr = err
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no SSH login as %s on %s after %d attempts; last error: %v", v.User, addr, attempts, lastErr)
		}
		select {
		case <-p.exited:
		case <-time.After(sshPoll):
		}
	}
}

// keepalive closes c when the guest stops answering, so that a command on a
// connection the guest dropped (reboot, network restart) fails instead of
// hanging.
func (v *vm) keepalive(c *ssh.Client) {
	for {
		time.Sleep(15 * time.Second)
		res := make(chan error, 1)
		go func() {
			_, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
			res <- err
		}()
		select {
		case err := <-res:
			if err != nil {
				return // closed
			}
		case <-time.After(30 * time.Second):
			v.dropClient(c)
			return
		}
	}
}

// errDropped marks a command whose connection broke before its exit status came.
var errDropped = errors.New("SSH connection dropped")

// runOnce runs cmd on a session of the current connection.
func (v *vm) runOnce(cmd string, timeout time.Duration) (stdout, stderr string, exit int, err error) {
	c, err := v.connected(5 * time.Minute)
	if err != nil {
		return "", "", -1, err
	}
	sess, err := c.NewSession()
	if err != nil {
		// Nothing ran: the connection is dead. Drop it so the next try redials.
		v.dropClient(c)
		return "", "", -1, fmt.Errorf("%w: opening a session: %v", errDropped, err)
	}
	defer sess.Close()
	var o, e bytes.Buffer
	sess.Stdout, sess.Stderr = &o, &e
	done := make(chan error, 1)
	go func() { done <- sess.Run(cmd) }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case err = <-done:
	case <-timer.C:
		v.dropClient(c)
		<-done
		return o.String(), e.String(), -1, fmt.Errorf("command %q timed out after %s", cmd, timeout)
	}
	var ee *ssh.ExitError
	switch {
	case err == nil:
		return o.String(), e.String(), 0, nil
	case errors.As(err, &ee):
		return o.String(), e.String(), ee.ExitStatus(), nil
	default: // io.EOF, *ssh.ExitMissingError, a closed connection…
		v.dropClient(c)
		return o.String(), e.String(), -1, fmt.Errorf("%w while running %q: %v", errDropped, cmd, err)
	}
}

// defaultCmdTimeout bounds one command run by Run and its variants.
const defaultCmdTimeout = 20 * time.Minute

// runFull runs cmd as the user (a login shell is not used). When the
// connection is found dead before the command starts, it reconnects and tries
// again; when it breaks while the command runs, it does so only if idempotent.
func (v *vm) runFull(cmd string, idempotent bool, timeout time.Duration) (stdout, stderr string, exit int, err error) {
	for attempt := 1; ; attempt++ {
		stdout, stderr, exit, err = v.runOnce(cmd, timeout)
		if err == nil || !errors.Is(err, errDropped) || attempt >= 5 {
			return
		}
		if !idempotent && !strings.Contains(err.Error(), "opening a session") {
			return
		}
		v.t.Logf("%v; reconnecting (attempt %d)", err, attempt+1)
	}
}

// Run runs cmd in the guest as the user and returns its stdout and exit
// status; err is set when no exit status could be had (SSH failure).
// Nothing is retried once the command may have started.
func (v *vm) Run(cmd string) (stdout string, exit int, err error) {
	stdout, _, exit, err = v.runFull(cmd, false, defaultCmdTimeout)
	return
}

// RunIdempotent is Run for read-only (or otherwise repeatable) commands: if
// the connection drops while it runs (cloud-init restarts sshd early in the
// boot), it reconnects and runs it again.
func (v *vm) RunIdempotent(cmd string) (stdout string, exit int, err error) {
	stdout, _, exit, err = v.runFull(cmd, true, defaultCmdTimeout)
	return
}

// MustRun runs cmd (retrying only if it is idempotent) and fails the test
// unless it exits 0; it returns stdout.
func (v *vm) mustRun(cmd string, idempotent bool) string {
	v.t.Helper()
	stdout, stderr, exit, err := v.runFull(cmd, idempotent, defaultCmdTimeout)
	if err != nil {
		v.t.Fatalf("guest %s: %q: %v", v.label(), cmd, err)
	}
	if exit != 0 {
		v.t.Fatalf("guest %s: %q exited %d\nstdout:\n%s\nstderr:\n%s", v.label(), cmd, exit, stdout, stderr)
	}
	return stdout
}

// label names the guest in messages: its hostname, or its seed and port
// when the seed gives no hostname.
func (v *vm) label() string {
	if v.Hostname != "" {
		return v.Hostname
	}
	return fmt.Sprintf("%s@127.0.0.1:%d", v.Seed, v.SSHPort)
}

// MustRun runs cmd once and fails the test unless it exits 0; it returns stdout.
func (v *vm) MustRun(cmd string) string {
	v.t.Helper()
	return v.mustRun(cmd, false)
}

// MustRead runs a read-only cmd (retried across dropped connections) and
// fails the test unless it exits 0; it returns stdout.
func (v *vm) MustRead(cmd string) string {
	v.t.Helper()
	return v.mustRun(cmd, true)
}

// WaitCloudInit waits for `cloud-init status --wait` to exit 0. Otherwise it
// logs `cloud-init status --long` and the tail of cloud-init-output.log and
// fails the test.
func (v *vm) WaitCloudInit() {
	v.t.Helper()
	start := time.Now()
	stdout, stderr, exit, err := v.runFull("cloud-init status --wait", true, 30*time.Minute)
	if err == nil && exit == 0 {
		v.t.Logf("cloud-init done after %s more: %s", time.Since(start).Round(100*time.Millisecond), lastLine(stdout))
		return
	}
	long, _, _, _ := v.runFull("cloud-init status --long", true, time.Minute)
	logTail, _, _, _ := v.runFull("sudo tail -n 60 /var/log/cloud-init-output.log", true, time.Minute)
	v.t.Fatalf("cloud-init status --wait: exit %d, err %v\n%s%s\n----- cloud-init status --long -----\n%s\n----- tail of /var/log/cloud-init-output.log -----\n%s",
		exit, err, stdout, stderr, long, logTail)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// BootID is the guest's /proc/sys/kernel/random/boot_id.
func (v *vm) BootID() string {
	v.t.Helper()
	return strings.TrimSpace(v.MustRead("cat /proc/sys/kernel/random/boot_id"))
}

// Reboot reboots the guest from inside and waits until the user can log in
// to the new boot (a different boot_id).
func (v *vm) Reboot() {
	v.t.Helper()
	before := v.BootID()
	start := time.Now()
	// The connection may or may not be cut before the exit status comes back.
	if _, _, _, err := v.runFull("sudo systemctl reboot", false, time.Minute); err != nil && !errors.Is(err, errDropped) {
		v.t.Fatalf("reboot: %v", err)
	}
	v.mu.Lock()
	c := v.client
	v.mu.Unlock()
	if c != nil {
		v.dropClient(c)
	}
	deadline := time.Now().Add(sshBootDeadline)
	if v.dom != nil {
		v.dom.afterGuestReboot(v, deadline)
	}
	for {
		// A login can still reach the old boot while it shuts down.
		_, err := v.connected(time.Until(deadline))
		if err != nil {
			v.t.Fatalf("SSH after reboot: %v", err)
		}
		out, exit, err := v.RunIdempotent("cat /proc/sys/kernel/random/boot_id")
		if err == nil && exit == 0 && strings.TrimSpace(out) != before {
			break
		}
		if time.Now().After(deadline) {
			v.t.Fatalf("the guest did not come back from the reboot within %s", sshBootDeadline)
		}
		v.mu.Lock()
		c := v.client
		v.mu.Unlock()
		if c != nil {
			v.dropClient(c)
		}
		time.Sleep(sshPoll)
	}
	v.t.Logf("rebooted in %s", time.Since(start).Round(100*time.Millisecond))
}

// cpuModel is the builder's default CPU for accel: the host's with KVM;
// under TCG qemu64 with the x86-64-v2 features (max is slower to emulate).
func cpuModel(accel string) string {
	if accel == "kvm" {
		return "host"
	}
	return "qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt"
}
