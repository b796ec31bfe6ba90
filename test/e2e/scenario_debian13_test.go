//go:build e2e

package e2e

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// degradedUserData is a harmless #cloud-config key that cloud-init 25.1
// reports as DEPRECATED, so that its `status` exits 2 (degraded): the
// build's cloud-init wait must warn with cloud-init's own message and go on
// (cloud_init_degraded = "warn", the default).
const degradedUserData = "#cloud-config\napt_update: false\n"

// TestScenarioDebian13 builds the basic scenario on Debian 13 (netplan +
// systemd-networkd + resolved, cloud-init 25.1 with ds-identify) with a
// deprecated key in the build's user-data, so that cloud-init ends
// degraded (exit 2) and the default cloud_init_degraded = "warn" goes on,
// naming the cause. The reset's report must show netplan's
// 50-cloud-init.yaml removed. Then the one output boots once for each
// consumer's own seed (see consumerSeeds), each a fresh overlay with a new
// MAC, and each is judged as a first boot; no clone may keep the build's
// hostname, MAC, instance-id, machine-id, host keys or DHCP identity.
func TestScenarioDebian13(t *testing.T) {
	tm := newTimings(t)
	built := buildBasic(t, tm, debian13, degradedUserData)

	// The degraded cloud-init was reported with its cause, and the build went on.
	warn := regexp.MustCompile(`Warning: cloud-init finished degraded: DEPRECATED: Deprecated cloud-config provided: apt_update`)
	if !warn.MatchString(built.run.Output) {
		t.Errorf("packer output has no warning naming cloud-init's DEPRECATED apt_update message (want %q)", warn)
	}
	if !strings.Contains(built.run.Output, `(continuing: cloud_init_degraded = "warn")`) {
		t.Errorf("packer output does not say the build continued because cloud_init_degraded = \"warn\"")
	}

	// The reset removed what cloud-init rendered for the build's network.
	if r := built.meta.Guest.Reset; !slices.Contains(r.RemovedPaths, "/etc/netplan/50-cloud-init.yaml") { // buildBasic checked Guest.Reset
		t.Errorf("metadata: the reset's removed_paths %q lack /etc/netplan/50-cloud-init.yaml", r.RemovedPaths)
	}
	bootConsumers(t, tm, built)
}

// consumersAtOnce is how many consumer VMs boot side by side: two light
// guests on the 2-CPU host finish sooner together than one after the other
// (measured: see test/e2e/README.md).
const consumersAtOnce = 2

// bootConsumers boots built's image once per consumer seed kind
// (consumerSeeds), consumersAtOnce at a time, each a fresh overlay with a
// new MAC, judges each with checkConsumerBoot and checks that it carries
// nothing of the build (marker present, no build trace, no networkd DHCP
// identity of another clone), then that machine-ids and host keys differ
// between all clones.
func bootConsumers(t *testing.T, tm *timings, built *basicBuild) {
	t.Helper()
	start := time.Now()
	var mu sync.Mutex
	boots := map[seedKind]consumerBoot{}
	duids := map[seedKind]string{}
	slots := make(chan struct{}, consumersAtOnce)
	t.Run("consumer", func(t *testing.T) {
		for _, k := range consumerSeeds {
			t.Run(k.String(), func(t *testing.T) {
				t.Parallel()
				slots <- struct{}{}
				defer func() { <-slots }()
				v := bootVM(t, built.output, vmOptions{Seed: k, CPUs: 1})
				r := checkConsumerBoot(t, v, consumerCheck{BuildHostname: built.traces.hostname})
				if got := strings.TrimSpace(v.MustRead("cat /etc/cloudimg-e2e-marker")); got != built.token {
					t.Errorf("marker file: %q, want the build's token %q", got, built.token)
				}
				checkNoBuildTraces(t, v, built.traces)
				duid := networkdDUID(t, v, r.NIC)
				mu.Lock()
				boots[k], duids[k] = r, duid
				mu.Unlock()
			})
		}
	})
	tm.since(fmt.Sprintf("%d consumer boots", len(consumerSeeds)), start)

	seenMID, seenKey, seenDUID := map[string]seedKind{}, map[string]seedKind{}, map[string]seedKind{}
	for _, k := range consumerSeeds {
		r, ok := boots[k]
		if !ok {
			continue // its subtest failed before the end, and said why
		}
		if o, dup := seenMID[r.MachineID]; dup {
			t.Errorf("the %s and %s clones share /etc/machine-id %s", o, k, r.MachineID)
		}
		seenMID[r.MachineID] = k
		if r.HostKey == nil {
			t.Errorf("the %s clone recorded no SSH host key", k)
		} else {
			fp := fingerprint(r.HostKey)
			if o, dup := seenKey[fp]; dup {
				t.Errorf("the %s and %s clones present the same SSH host key %s", o, k, fp)
			}
			seenKey[fp] = k
		}
		if d := duids[k]; d != "" {
			if o, dup := seenDUID[d]; dup {
				t.Errorf("the %s and %s clones send the same DHCP DUID %s (networkd derives it from the machine-id): DHCP servers would give them one address", o, k, d)
			}
			seenDUID[d] = k
		}
	}
}

// duidRe finds the DHCP DUID in `networkctl status`, which systemd 257
// prints as e.g. "DHCPv6 Client DUID: DUID-EN/Vendor:0000ab11…" (the
// enterprise number of systemd, then a hash of the machine-id).
var duidRe = regexp.MustCompile(`Client DUID:\s*(\S+)`)

// networkdDUID returns the DHCP DUID systemd-networkd uses on nic ("" where
// the NIC is not networkd's, e.g. on an ENI guest), logging what it saw.
func networkdDUID(t testing.TB, v *vm, nic string) string {
	t.Helper()
	out, code, err := v.RunIdempotent("networkctl status --no-pager " + nic + " 2>&1")
	if err != nil || code != 0 {
		t.Logf("networkctl status %s: exit %d, %v: %s", nic, code, err, strings.TrimSpace(out))
		return ""
	}
	for _, l := range strings.Split(out, "\n") {
		if m := duidRe.FindStringSubmatch(l); m != nil {
			t.Logf("networkd on %s: %s", nic, strings.TrimSpace(l))
			return m[1]
		}
	}
	t.Errorf("networkctl status %s shows no DUID:\n%s", nic, out)
	return ""
}
