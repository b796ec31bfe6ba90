package cloudinitreset

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
)

// A throwaway guest root: realistic files of a Debian 12 cloud image after
// a build with the user packer (UID 1000) and the hostname packer-web, for
// running the generated scripts with ROOT=<dir>.
type guest struct {
	t    *testing.T
	root string
}

// isRoot reports whether the test can set owners (the tests run as root in
// CI; as another user the ownership parts are skipped).
func isRoot() bool { return os.Geteuid() == 0 }

func newGuest(t *testing.T) *guest {
	t.Helper()
	g := &guest{t: t, root: t.TempDir()}
	etc := func(name string) string {
		b, err := os.ReadFile(filepath.Join("testdata", "debian12", "etc", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, n := range []string{"passwd", "group", "subuid", "subgid", "login.defs"} {
		g.write("/etc/"+n, etc(n), 0o644, 0, 0)
		g.write("/etc/"+n+"-", etc(n), 0o644, 0, 0)
	}
	for _, n := range []string{"shadow", "gshadow"} {
		g.write("/etc/"+n, etc(n), 0o640, 0, 42)
		g.write("/etc/"+n+"-", etc(n), 0o640, 0, 42)
	}
	g.write("/etc/sudoers.d/90-cloud-init-users", etc("sudoers.d/90-cloud-init-users"), 0o440, 0, 0)
	g.write("/etc/sudoers.d/README", etc("sudoers.d/README"), 0o440, 0, 0)
	g.write("/etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\nHOME_URL=\"https://www.debian.org/\"\n", 0o644, 0, 0)
	g.write("/etc/machine-id", "0123456789abcdef0123456789abcdef\n", 0o444, 0, 0)
	g.write("/var/lib/dbus/machine-id", "0123456789abcdef0123456789abcdef\n", 0o444, 0, 0)

	// The build's hostname, packer-web, set by cloud-init from the seed's
	// user-data (manage_etc_hosts: true), and the copy of the source
	// image's /etc/hostname and /etc/hosts the seed's bootcmd made before.
	g.write("/proc/sys/kernel/hostname", "packer-web\n", 0o644, 0, 0)
	g.write("/etc/hostname", "packer-web\n", 0o644, 0, 0)
	g.write("/etc/hosts", buildHosts, 0o644, 0, 0)
	g.write("/var/lib/cloud/data/set-hostname", "{\n \"fqdn\": \"packer-web\",\n \"hostname\": \"packer-web\"\n}", 0o644, 0, 0)
	g.write(savedDir+"/hostname", "localhost\n", 0o644, 0, 0)
	g.write(savedDir+"/hosts", sourceHosts, 0o644, 0, 0)
	if err := os.Chmod(g.path(savedDir), 0o700); err != nil {
		t.Fatal(err)
	}

	// The build user's files, and another user's.
	g.write("/home/packer/.bashrc", "# bashrc\n", 0o644, 1000, 1000)
	g.write("/home/packer/.ssh/authorized_keys", "ssh-ed25519 AAAA packer\n", 0o600, 1000, 1000)
	g.chown("/home/packer/.ssh", 1000, 1000)
	g.chown("/home/packer", 1000, 1000)
	g.write("/home/deploy/.profile", "# profile\n", 0o644, 1001, 1001)
	g.write("/home/deploy/.bash_history", "ls\n", 0o600, 1001, 1001)
	g.write("/root/.bash_history", "sudo -i\n", 0o600, 0, 0)
	g.write("/root/.lesshst", ".less-history-file:\n", 0o600, 0, 0)
	g.write("/root/.profile", "# root profile\n", 0o644, 0, 0)
	g.write("/var/mail/packer", "", 0o660, 1000, 8)
	g.write("/var/spool/cron/crontabs/packer", "* * * * * true\n", 0o600, 1000, 1000)
	g.write("/opt/app/data", "made by the build user\n", 0o644, 1000, 1000)

	// cloud-init state and what it generated.
	g.write("/var/lib/cloud/instances/iid-local01/user-data.txt", "#cloud-config\n", 0o600, 0, 0)
	g.write("/var/lib/cloud/data/instance-id", "iid-local01\n", 0o644, 0, 0)
	g.write("/var/lib/cloud/seed/nocloud/meta-data", "instance-id: x\n", 0o644, 0, 0)
	g.symlink("/var/lib/cloud/instances/iid-local01", "/var/lib/cloud/instance")
	g.write("/var/log/cloud-init.log", "log\n", 0o640, 0, 4)
	g.write("/var/log/cloud-init-output.log", "log\n", 0o640, 0, 4)
	g.write("/var/log/cloud-init.log.1.gz", "old\n", 0o640, 0, 4)
	g.write("/var/log/syslog", "kept\n", 0o640, 0, 4)
	g.write("/etc/network/interfaces.d/50-cloud-init", "auto eth0\n", 0o644, 0, 0)
	g.write("/etc/udev/rules.d/70-persistent-net.rules", `SUBSYSTEM=="net", ACTION=="add", DRIVERS=="?*", ATTR{address}=="`+buildMAC+`", NAME="eth0"`+"\n", 0o644, 0, 0)
	g.write("/etc/network/interfaces", "source /etc/network/interfaces.d/*\n", 0o644, 0, 0)
	g.write("/etc/netplan/50-cloud-init.yaml", cloudInitNetplan, 0o600, 0, 0)
	g.write("/etc/netplan/01-mine.yaml", "network:\n  version: 2\n  ethernets:\n    all:\n      match: {name: \"en*\"}\n      dhcp4: true\n", 0o600, 0, 0)
	g.write("/etc/systemd/network/10-cloud-init-eth0.network", "[Match]\n", 0o644, 0, 0)
	g.write("/etc/NetworkManager/system-connections/cloud-init-eth0.nmconnection", "[connection]\n", 0o600, 0, 0)
	g.write("/etc/ssh/sshd_config.d/50-cloud-init.conf", "PasswordAuthentication no\n", 0o600, 0, 0)
	g.write("/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\n", 0o644, 0, 0)
	g.write("/etc/ssh/ssh_host_ed25519_key", "KEY\n", 0o600, 0, 0)
	g.write("/etc/ssh/ssh_host_ed25519_key.pub", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIqI4910CfGV root@packer-web\n", 0o644, 0, 0)

	// The build VM's NIC (backed by a device), the loopback and a bridge
	// (not): only the NIC's address is looked for. networkd's state
	// directory (Debian 13 makes it), a lease its DHCP server handed out,
	// NetworkManager's host key.
	g.write("/sys/class/net/ens3/address", buildMAC+"\n", 0o444, 0, 0)
	g.mkdir("/sys/class/net/ens3/device")
	g.write("/sys/class/net/lo/address", "00:00:00:00:00:00\n", 0o444, 0, 0)
	g.write("/sys/class/net/br0/address", bridgeMAC+"\n", 0o444, 0, 0)
	g.mkdir("/var/lib/systemd/network")
	g.write("/var/lib/systemd/network/dhcp-server-lease/br0", `{"Leases":[{"HardwareAddress":[82,84,0,1,2,3]}]}`, 0o644, 998, 998)
	g.write("/var/lib/NetworkManager/secret_key", "nm-v2:c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", 0o600, 0, 0)
	g.write("/var/lib/NetworkManager/NetworkManager.state", "[main]\nNetworkingEnabled=true\n", 0o644, 0, 0)

	// Hygiene.
	g.write("/var/lib/systemd/random-seed", "seed", 0o600, 0, 0)
	g.write("/var/lib/dhcp/dhclient.eth0.leases", "lease {}\n", 0o644, 0, 0)
	g.write("/tmp/build-junk", "x\n", 0o644, 0, 0)
	g.write("/tmp/.hidden/file", "x\n", 0o644, 0, 0)
	g.write("/var/tmp/junk", "x\n", 0o644, 0, 0)
	g.write("/var/lib/apt/lists/deb.debian.org_dists_bookworm_InRelease", "x\n", 0o644, 0, 0)
	g.write("/var/lib/apt/lists/lock", "", 0o640, 0, 0)
	g.write("/var/cache/apt/pkgcache.bin", "x", 0o644, 0, 0)
	g.write("/var/log/journal/0123456789abcdef0123456789abcdef/system.journal", "j", 0o640, 0, 0)

	// dpkg's database: one package, a stat override.
	g.write("/var/lib/dpkg/status", "Package: base-files\nStatus: install ok installed\nPriority: required\nSection: admin\nMaintainer: x\nArchitecture: amd64\nVersion: 12.4+deb12u5\nDescription: base\n\nPackage: oldpkg\nStatus: deinstall ok config-files\nPriority: optional\nSection: admin\nMaintainer: x\nArchitecture: amd64\nVersion: 1.0\nDescription: old\n\n", 0o644, 0, 0)
	g.write("/var/lib/dpkg/info/base-files.list", "/.\n", 0o644, 0, 0)
	g.write("/var/lib/dpkg/info/base-files.md5sums", "", 0o644, 0, 0)
	g.mkdir("/var/lib/dpkg/updates")
	g.write("/var/lib/dpkg/statoverride", "root _chrony 750 /var/log/chrony\n", 0o644, 0, 0)
	return g
}

// The MAC addresses of the build VM's NIC and of a bridge on it.
const (
	buildMAC  = "52:54:00:ab:cd:ef"
	bridgeMAC = "02:42:ac:11:00:01"
)

// cloudInitNetplan is what cloud-init renders from cloudimg-kvm's default
// network-config: the NIC matched by its MAC address.
const cloudInitNetplan = `# This file is generated from information provided by the datasource.
network:
    ethernets:
        eth0:
            dhcp4: true
            match:
                macaddress: 52:54:00:ab:cd:ef
    version: 2
`

// The seed's copy of the source image's files (cidata.SavedEtcDir).
const savedDir = "/var/lib/cloud/cloudimg-source-etc"

// sourceHosts is the source image's /etc/hosts (Debian's).
const sourceHosts = "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n"

// buildHosts is /etc/hosts as cloud-init's hosts.debian.tmpl renders it for
// the build (manage_etc_hosts: true).
const buildHosts = `# Your system has configured 'manage_etc_hosts' as True.
# As a result, if you wish for changes to this file to persist
# then you will need to either
# a.) make changes to the master file in /etc/cloud/templates/hosts.debian.tmpl
# b.) change or remove the value of 'manage_etc_hosts' in
#     /etc/cloud/cloud.cfg or cloud-config from user-data
#
127.0.1.1 packer-web packer-web
127.0.0.1 localhost

# The following lines are desirable for IPv6 capable hosts
::1 localhost ip6-localhost ip6-loopback
ff02::1 ip6-allnodes
ff02::2 ip6-allrouters
`

func (g *guest) path(p string) string { return filepath.Join(g.root, filepath.FromSlash(p)) }

func (g *guest) mkdir(p string) {
	g.t.Helper()
	if err := os.MkdirAll(g.path(p), 0o755); err != nil {
		g.t.Fatal(err)
	}
}

func (g *guest) write(p, content string, mode os.FileMode, uid, gid int) {
	g.t.Helper()
	g.mkdir(filepath.Dir(p))
	f := g.path(p)
	if err := os.WriteFile(f, []byte(content), mode); err != nil {
		g.t.Fatal(err)
	}
	if err := os.Chmod(f, mode); err != nil {
		g.t.Fatal(err)
	}
	g.chown(p, uid, gid)
}

func (g *guest) chown(p string, uid, gid int) {
	g.t.Helper()
	if !isRoot() {
		return
	}
	if err := os.Lchown(g.path(p), uid, gid); err != nil {
		g.t.Fatal(err)
	}
}

func (g *guest) symlink(target, p string) {
	g.t.Helper()
	g.mkdir(filepath.Dir(p))
	if err := os.Symlink(target, g.path(p)); err != nil {
		g.t.Fatal(err)
	}
}

func (g *guest) read(p string) string {
	g.t.Helper()
	b, err := os.ReadFile(g.path(p))
	if err != nil {
		g.t.Fatal(err)
	}
	return string(b)
}

func (g *guest) exists(p string) bool {
	_, err := os.Lstat(g.path(p))
	return err == nil
}

// snapshot describes every entry below the root (type, mode, owner,
// contents or link target) except the paths under skip.
func (g *guest) snapshot(skip ...string) string {
	g.t.Helper()
	var lines []string
	err := filepath.WalkDir(g.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := "/" + strings.TrimPrefix(filepath.ToSlash(strings.TrimPrefix(p, g.root)), "/")
		for _, s := range skip {
			if rel == s || strings.HasPrefix(rel, s+"/") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%s %v %d:%d", rel, fi.Mode(), st.Uid, st.Gid)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(sum[:8])
		}
		lines = append(lines, desc)
		return nil
	})
	if err != nil {
		g.t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// shells are the /bin/sh implementations available to run the scripts
// with: dash is Debian's and Ubuntu's sh, bash is sh on RHEL-likes,
// busybox's on small images. With CLOUDIMG_REQUIRE_SHELLS=1 (make unit) a
// missing one fails the test.
func shells(t *testing.T) []string {
	var out []string
	for _, s := range []string{"dash", "bash", "busybox"} {
		if p, err := exec.LookPath(s); err == nil {
			out = append(out, p)
		} else if os.Getenv("CLOUDIMG_REQUIRE_SHELLS") == "1" {
			t.Fatalf("%s not found: run make deps (CLOUDIMG_REQUIRE_SHELLS=1)", s)
		}
	}
	if len(out) == 0 {
		t.Skip("no shell to run the scripts")
	}
	return out
}

// runScript runs script with ROOT set to the guest root, the way
// execute_command would (sh <path>), and returns stdout and the exit code.
func (g *guest) runScript(shell, scriptPath string) (string, int) {
	g.t.Helper()
	args := []string{scriptPath}
	if strings.HasSuffix(shell, "busybox") {
		args = []string{"sh", scriptPath}
	}
	cmd := exec.Command(shell, args...)
	cmd.Env = append(os.Environ(), "ROOT="+g.root)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			g.t.Fatalf("running %s: %v", scriptPath, err)
		}
		code = ee.ExitCode()
	}
	if stderr.Len() > 0 {
		g.t.Logf("stderr of %s:\n%s", filepath.Base(scriptPath), stderr.String())
	}
	return stdout.String(), code
}

// collect runs the collect script against the guest and parses it.
func (g *guest) collect(shell string) *Collected {
	g.t.Helper()
	dir := g.t.TempDir()
	p := filepath.Join(dir, "collect.sh")
	script, err := CollectScript("n0nce")
	if err != nil {
		g.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(script), 0o644); err != nil {
		g.t.Fatal(err)
	}
	out, code := g.runScript(shell, p)
	if code != 0 {
		g.t.Fatalf("collect script: exit %d\n%s", code, out)
	}
	got, err := ParseCollect([]byte(out), "n0nce")
	if err != nil {
		g.t.Fatalf("ParseCollect: %v\n%s", err, out)
	}
	return got
}

// stage writes an apply bundle into the guest's /tmp the way Provision
// uploads it, and returns the script's path.
func (g *guest) stage(b *Bundle) string {
	g.t.Helper()
	dir := "/tmp/cloudimg-reset.test"
	g.mkdir(dir)
	for name, content := range b.Files {
		g.write(dir+"/"+name, string(content), 0o644, 1000, 1000)
	}
	g.write(dir+"/apply.sh", b.Script, 0o644, 1000, 1000)
	g.chown(dir, 1000, 1000)
	return g.path(dir + "/apply.sh")
}

// mustApply runs the staged bundle b with shell sh and fails the test unless
// the script exits 0 and reports every check passed; it returns the output
// and its parsed report.
func (g *guest) mustApply(t *testing.T, sh string, b *Bundle) (string, *ApplyResult) {
	t.Helper()
	out, code := g.runScript(sh, g.stage(b))
	res := ParseApply([]byte(out), "n0nce")
	if code != 0 || !res.OK {
		t.Fatalf("exit %d, failed %v\n%s", code, res.Failed(), out)
	}
	return out, res
}
