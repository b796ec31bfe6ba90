//go:build e2e

package e2e

// Consumer boots: an image boots as a cloud-init first boot wherever it is
// used, with the consumer's own seed. bootVM's seed kinds (vm_test.go) write
// the seeds that virt-install, Terraform's libvirt provider, Proxmox,
// OpenStack/KubeVirt and cloud-init's own docs write, or let virt-install
// and libvirt make the VM (vm_libvirt_test.go); checkConsumerBoot judges
// the boot.

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// consumerSeeds are the seed kinds a consumer of an image boots it with.
var consumerSeeds = []seedKind{
	seedNoCloudEmptyMeta, seedConfigDrive, seedNoCloudNetV1Eth0, seedNoCloudDefaultUser, seedVirtInstall,
}

// consumerCheck is what checkConsumerBoot needs to know beyond the VM.
type consumerCheck struct {
	// BuildHostname is the build VM's hostname (the builder's hostname
	// option, "packer-<build name>" by default). A guest whose seed gives
	// no hostname must not have it; without it, any hostname starting with
	// the builder's default prefix "packer-" fails.
	BuildHostname string
	// NoReboot leaves out the reboot and what is checked after it.
	NoReboot bool
}

// consumerBoot is what checkConsumerBoot saw in the guest, for comparisons
// between clones of one image (machine-id and host key must differ).
type consumerBoot struct {
	MachineID  string
	HostKey    ssh.PublicKey // as presented on the first boot
	Hostname   string
	InstanceID string
	NIC        string        // name of the NIC with the VM's MAC address
	SSHAfter   time.Duration // VM start → first SSH login
	DoneAfter  time.Duration // VM start → cloud-init done
}

// checkConsumerBoot judges v's boot as a cloud-init first boot with its
// consumer's seed (bootVM's seed kinds), on the raw test image or on an
// image the plugin built:
//   - cloud-init status done; exit 1 (error) and exit 2 (degraded, cloud-init
//     23.4 and later) are test errors naming the cause, except recoverable
//     errors the seed itself is known to cause (vm.KnownDegraded), which are
//     logged;
//   - the seed's instance-id is the current one and the only one in
//     /var/lib/cloud/instances;
//   - the seed's key logged in as the seed's user (vm.User);
//   - no build user (checkBuildUserGone);
//   - /etc/machine-id valid;
//   - the hostname is the seed's, or, when the seed gives none, not the
//     build's (c.BuildHostname);
//   - the NIC with the VM's MAC has an IPv4 address, and the name the seed
//     asks for (vm.NICName);
//   - `dpkg -i` of a small package works (its postinst runs);
//   - unless c.NoReboot: after a reboot, the same machine-id, host key and
//     single instance, and cloud-init done (or disabled, when the seed is
//     gone as virt-install takes it away).
//
// It returns the machine-id, host key and the rest, so that the caller can
// assert they differ between clones.
func checkConsumerBoot(t testing.TB, v *vm, c consumerCheck) consumerBoot {
	t.Helper()
	var r consumerBoot
	v.mu.Lock()
	if !v.FirstLogin.IsZero() && !v.Started.IsZero() {
		r.SSHAfter = v.FirstLogin.Sub(v.Started)
	}
	v.mu.Unlock()

	checkCloudInitStatus(t, v, false)
	if !v.Started.IsZero() {
		r.DoneAfter = time.Since(v.Started)
	}
	r.HostKey = v.HostKey()

	r.InstanceID = strings.TrimSpace(v.MustRead("sudo -n cat /var/lib/cloud/data/instance-id"))
	if r.InstanceID != v.InstanceID {
		t.Errorf("guest %s (seed %s): cloud-init instance-id %q, want %q", v.label(), v.Seed, r.InstanceID, v.InstanceID)
	}
	checkOnlyInstance(t, v)
	if got := strings.TrimSpace(v.MustRead("id -un")); got != v.User {
		t.Errorf("guest %s (seed %s): the seed's key logged in as %q, want %q", v.label(), v.Seed, got, v.User)
	}
	checkBuildUserGone(t, v)
	r.MachineID = machineID(t, v)

	r.Hostname = strings.TrimSpace(v.MustRead("hostname"))
	switch {
	case v.Hostname != "":
		if r.Hostname != v.Hostname {
			t.Errorf("guest %s (seed %s): hostname %q, want %q from the seed", v.label(), v.Seed, r.Hostname, v.Hostname)
		}
	case c.BuildHostname != "" && strings.EqualFold(r.Hostname, c.BuildHostname):
		t.Errorf("guest %s (seed %s, which gives no hostname): hostname %q is the build's", v.label(), v.Seed, r.Hostname)
	case c.BuildHostname == "" && strings.HasPrefix(r.Hostname, "packer-"):
		t.Errorf("guest %s (seed %s, which gives no hostname): hostname %q looks like a build's (packer-…)", v.label(), v.Seed, r.Hostname)
	}

	r.NIC = checkNIC(t, v)
	checkDpkgInstall(t, v)
	t.Logf("guest %s (seed %s): user %s, instance-id %s, hostname %s, NIC %s, machine-id %s, host key %s; SSH after %s, cloud-init done after %s",
		v.label(), v.Seed, v.User, r.InstanceID, r.Hostname, r.NIC, r.MachineID, fingerprint(r.HostKey),
		r.SSHAfter.Round(time.Second), r.DoneAfter.Round(time.Second))

	if c.NoReboot {
		return r
	}
	v.Reboot()
	checkCloudInitStatus(t, v, true)
	if got := strings.TrimSpace(v.MustRead("cat /etc/machine-id")); got != r.MachineID {
		t.Errorf("guest %s (seed %s): machine-id %q after the reboot, was %q", v.label(), v.Seed, got, r.MachineID)
	}
	if got := strings.TrimSpace(v.MustRead("sudo -n cat /var/lib/cloud/data/instance-id")); got != r.InstanceID {
		t.Errorf("guest %s (seed %s): instance-id %q after the reboot, was %q", v.label(), v.Seed, got, r.InstanceID)
	}
	checkOnlyInstance(t, v)
	if k := v.HostKey(); !sameKey(k, r.HostKey) {
		t.Errorf("guest %s (seed %s): host key %s after the reboot, was %s (regenerated: not a first boot only)", v.label(), v.Seed, fingerprint(k), fingerprint(r.HostKey))
	}
	return r
}

func fingerprint(k ssh.PublicKey) string {
	if k == nil {
		return "(none)"
	}
	return k.Type() + " " + ssh.FingerprintSHA256(k)
}

// checkOnlyInstance fails unless /var/lib/cloud/instances holds exactly the
// seed's instance.
func checkOnlyInstance(t testing.TB, v *vm) {
	t.Helper()
	if got := strings.Fields(v.MustRead("sudo -n ls -1A /var/lib/cloud/instances")); len(got) != 1 || got[0] != v.InstanceID {
		t.Errorf("guest %s (seed %s): /var/lib/cloud/instances holds %q, want only %q", v.label(), v.Seed, got, v.InstanceID)
	}
}

// cloudInitJSON is the part of `cloud-init status --format json` read here.
type cloudInitJSON struct {
	Status            string              `json:"status"`
	ExtendedStatus    string              `json:"extended_status"`
	Detail            string              `json:"detail"`
	Errors            []string            `json:"errors"`
	RecoverableErrors map[string][]string `json:"recoverable_errors"`
}

// checkCloudInitStatus waits for cloud-init and judges its status: done
// (exit 0) passes; error (exit 1) and degraded (exit 2) are test errors
// naming the causes (cloud-init's own messages), except recoverable errors
// that v.KnownDegraded names, which are logged. After a reboot, status
// disabled passes too: cloud-init's generator disables it when the seed is
// gone (virt-install takes it away after the first boot).
func checkCloudInitStatus(t testing.TB, v *vm, afterReboot bool) {
	t.Helper()
	out, stderr, exit, err := v.runFull("cloud-init status --wait --long", true, 30*time.Minute)
	if err != nil {
		t.Fatalf("guest %s (seed %s): cloud-init status --wait: %v", v.label(), v.Seed, err)
	}
	status := ""
	if m := regexp.MustCompile(`(?m)^status: (\S+)`).FindStringSubmatch(out); m != nil {
		status = m[1]
	}
	when := "first boot"
	if afterReboot {
		when = "after the reboot"
	}
	if exit == 0 && (status == "done" || afterReboot && status == "disabled") {
		if status != "done" {
			t.Logf("guest %s (seed %s): cloud-init %s %s:\n%s", v.label(), v.Seed, status, when, strings.TrimSpace(out))
		}
		return
	}
	if exit != 2 {
		logTail, _, _, _ := v.runFull("sudo -n grep -E 'WARNING|ERROR|Traceback' /var/log/cloud-init.log | tail -n 30", true, time.Minute)
		t.Errorf("guest %s (seed %s): cloud-init %s: exit %d, status %q, want done\n%s%s\n----- warnings and errors of /var/log/cloud-init.log -----\n%s",
			v.label(), v.Seed, when, exit, status, out, stderr, logTail)
		return
	}
	// Degraded: cloud-init finished, with recoverable errors. Name them.
	causes := degradedCauses(v, out)
	var unknown, known []string
	for _, c := range causes {
		if containsAny(c, v.KnownDegraded) {
			known = append(known, c)
		} else {
			unknown = append(unknown, c)
		}
	}
	if len(unknown) > 0 || len(causes) == 0 {
		t.Errorf("guest %s (seed %s): cloud-init %s finished degraded (status exit 2), caused by:\n  %s\n%s",
			v.label(), v.Seed, when, strings.Join(append(unknown, known...), "\n  "), out)
		return
	}
	t.Logf("guest %s (seed %s): cloud-init %s finished degraded (exit 2) only because of the seed itself (known: %q):\n  %s",
		v.label(), v.Seed, when, v.KnownDegraded, strings.Join(known, "\n  "))
}

// degradedCauses lists cloud-init's recoverable errors (each once, as
// "LEVEL: message") from `status --format json`, or from the --long
// output when JSON is not to be had.
func degradedCauses(v *vm, long string) []string {
	seen := map[string]bool{}
	var causes []string
	add := func(c string) {
		if c = strings.TrimSpace(c); c != "" && !seen[c] {
			seen[c] = true
			causes = append(causes, c)
		}
	}
	if js, _, exit, err := v.runFull("cloud-init status --format json", true, time.Minute); err == nil && (exit == 0 || exit == 2) {
		var st cloudInitJSON
		if json.Unmarshal([]byte(js), &st) == nil {
			levels := make([]string, 0, len(st.RecoverableErrors))
			for l := range st.RecoverableErrors {
				levels = append(levels, l)
			}
			sort.Strings(levels)
			for _, l := range levels {
				for _, m := range st.RecoverableErrors[l] {
					add(l + ": " + m)
				}
			}
			for _, e := range st.Errors {
				add("ERROR: " + e)
			}
			return causes
		}
	}
	// --long lists them under "recoverable_errors:" as "\t- message".
	if _, rest, ok := strings.Cut(long, "recoverable_errors:"); ok {
		for _, l := range strings.Split(rest, "\n") {
			if m, ok := strings.CutPrefix(strings.TrimSpace(l), "- "); ok {
				add(m)
			}
		}
	}
	return causes
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if sub != "" && strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// checkNIC finds the NIC with the VM's MAC address, fails unless it has an
// IPv4 address (and, when the seed names it, that name), and returns its
// name.
func checkNIC(t testing.TB, v *vm) string {
	t.Helper()
	mac := strings.ToLower(v.MAC)
	links := v.MustRead("ip -o link show")
	name := ""
	for _, l := range strings.Split(links, "\n") {
		// "2: eth0: <BROADCAST,…> mtu 1500 … link/ether 52:54:00:… brd …"
		f := strings.Fields(l)
		if len(f) < 2 || !strings.Contains(strings.ToLower(l), "link/ether "+mac) {
			continue
		}
		name = strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":")
	}
	if name == "" {
		t.Errorf("guest %s (seed %s): no NIC with MAC %s:\n%s", v.label(), v.Seed, mac, links)
		return ""
	}
	if v.NICName != "" && name != v.NICName {
		t.Errorf("guest %s (seed %s): the NIC with MAC %s is named %q, want %q as the seed's network-config names it", v.label(), v.Seed, mac, name, v.NICName)
	}
	if addr := v.MustRead("ip -4 -o addr show dev " + name); !strings.Contains(addr, " inet ") {
		t.Errorf("guest %s (seed %s): NIC %s has no IPv4 address:\n%s", v.label(), v.Seed, name, v.MustRead("ip -br addr"))
	}
	return name
}

// consumerDeb is the package checkDpkgInstall installs.
const consumerDeb = "cloudimg-consumer-check"

// checkDpkgInstall installs a small package with dpkg -i and checks that
// its postinst ran.
func checkDpkgInstall(t testing.TB, v *vm) {
	t.Helper()
	marker := "/var/lib/" + consumerDeb + ".postinst-ran"
	deb := buildDeb(t, v.Dir, consumerDeb, "", "#!/bin/sh\nset -e\ntouch "+marker+"\n")
	b, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	dst := "/tmp/" + consumerDeb + ".deb"
	upload(t, v, b, dst)
	if out, stderr, exit, err := v.runFull("sudo -n dpkg -i "+dst, false, 10*time.Minute); err != nil || exit != 0 {
		t.Errorf("guest %s (seed %s): dpkg -i %s: exit %d, %v\n%s%s", v.label(), v.Seed, consumerDeb, exit, err, out, stderr)
		return
	}
	if got := v.MustRead("dpkg-query -W -f '${Status}' " + consumerDeb + "; test -e " + marker + " && echo ' postinst-ran'"); !strings.Contains(got, "install ok installed postinst-ran") {
		t.Errorf("guest %s (seed %s): after dpkg -i: %q, want the package installed and its postinst run", v.label(), v.Seed, got)
	}
}

// consumersRawEnv enables the consumer tests on the raw test image.
const consumersRawEnv = "CLOUDIMG_E2E_CONSUMERS_RAW"

func needConsumersRaw(t *testing.T) {
	if os.Getenv(consumersRawEnv) != "1" {
		t.Skipf("set %s=1 to boot the raw test image with every consumer seed (several minutes per seed under TCG)", consumersRawEnv)
	}
}

// TestConsumerSeedsRawImage validates the consumer seeds and
// checkConsumerBoot on the RAW Debian 13 test image (no plugin involved):
// one boot per seed kind, one after the other, each judged as a first boot
// and rebooted once. It is skipped unless CLOUDIMG_E2E_CONSUMERS_RAW=1 (so
// `make test` leaves it out: five boots and five reboots take a while under
// TCG); the scenarios run the same check on the images the plugin built.
func TestConsumerSeedsRawImage(t *testing.T) {
	needConsumersRaw(t)
	img := testImage(t, debian13)
	var mu sync.Mutex
	var lines []string
	for _, seed := range consumerSeeds {
		t.Run(seed.String(), func(t *testing.T) {
			v := bootVM(t, img, vmOptions{Seed: seed})
			r := checkConsumerBoot(t, v, consumerCheck{})
			t.Logf("seed user-data as cloud-init got it:\n%s", v.MustRead("sudo -n cat /var/lib/cloud/instance/user-data.txt"))
			t.Logf("datasource, and the network config cloud-init rendered:\n%s", v.MustRead(
				"cloud-init status --long | grep -A1 '^detail:'; sudo -n cat /etc/netplan/50-cloud-init.yaml /etc/network/interfaces.d/50-cloud-init 2>/dev/null; true"))
			mu.Lock()
			lines = append(lines, fmt.Sprintf("%-22s user %-7s instance-id %-38s hostname %-12s NIC %-8s SSH %4.0fs  cloud-init done %4.0fs",
				seed, v.User, r.InstanceID, r.Hostname, r.NIC, r.SSHAfter.Seconds(), r.DoneAfter.Seconds()))
			mu.Unlock()
		})
	}
	t.Logf("TIMING %s (%d vCPU, load %s):\n%s", t.Name(), 2, loadAvg(), strings.Join(lines, "\n"))
}

// TestConsumerBootTimings measures (nothing asserted beyond the boots) two
// consumer seeds booted with 1 vCPU each, first one after the other, then
// side by side, and with 2 vCPUs one after the other: whether two light VMs
// at once lower the total under TCG. Skipped unless
// CLOUDIMG_E2E_CONSUMERS_RAW=1.
func TestConsumerBootTimings(t *testing.T) {
	needConsumersRaw(t)
	img := testImage(t, debian13)
	seeds := []seedKind{seedNoCloudEmptyMeta, seedNoCloudDefaultUser}
	type res struct{ ssh, done time.Duration }
	boot := func(t *testing.T, seed seedKind, cpus int) res {
		v := bootVM(t, img, vmOptions{Seed: seed, CPUs: cpus})
		checkCloudInitStatus(t, v, false)
		r := res{ssh: v.FirstLogin.Sub(v.Started), done: time.Since(v.Started)}
		if err := v.Stop(); err != nil {
			t.Error(err)
		}
		return r
	}
	var report []string
	run := func(name string, cpus int, parallel bool) {
		start := time.Now()
		got := make([]res, len(seeds))
		t.Run(name, func(t *testing.T) {
			for i, seed := range seeds {
				t.Run(seed.String(), func(t *testing.T) {
					if parallel {
						t.Parallel()
					}
					got[i] = boot(t, seed, cpus)
				})
			}
		})
		var parts []string
		for i, seed := range seeds {
			parts = append(parts, fmt.Sprintf("%s SSH %.0fs done %.0fs", seed, got[i].ssh.Seconds(), got[i].done.Seconds()))
		}
		report = append(report, fmt.Sprintf("%-22s total %4.0fs (%s; load %s)", name, time.Since(start).Seconds(), strings.Join(parts, ", "), loadAvg()))
	}
	run("1vcpu-one-after-other", 1, false)
	run("1vcpu-side-by-side", 1, true)
	run("2vcpu-one-after-other", 2, false)
	t.Logf("TIMING %s:\n%s", t.Name(), strings.Join(report, "\n"))
}

// loadAvg is the host's 1-minute load average.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}
