//go:build e2e

package e2e

import (
	"strings"
	"testing"
)

// TestBootTestImage proves the harness itself, without the plugin: each
// cell's raw test image boots under bootVM with the harness's own seed,
// cloud-init finishes, the seed's user logs in with its key, and the
// hostname and instance-id are the seed's. Debian 12 gets a network-config
// matching the MAC (ENI), Debian 13 none (cloud-init's fallback through
// netplan); one after the other (two emulated guests side by side on a small
// host slow each other down a lot).
func TestBootTestImage(t *testing.T) {
	for _, c := range []struct {
		cell  cell
		shape netShape
	}{{debian12, netMatchMAC}, {debian13, netNone}} {
		t.Run(string(c.cell)+"/"+strings.ReplaceAll(c.shape.String(), " ", "_"), func(t *testing.T) {
			v := bootVM(t, testImage(t, c.cell), vmOptions{Network: c.shape})
			v.WaitCloudInit()

			if got := strings.TrimSpace(v.MustRead("id -un")); got != v.User {
				t.Errorf("logged in as %q, want %q", got, v.User)
			}
			if got := strings.TrimSpace(v.MustRead("hostname")); got != v.Hostname {
				t.Errorf("hostname %q, want %q from the seed", got, v.Hostname)
			}
			if got := strings.TrimSpace(v.MustRead("sudo -n cat /var/lib/cloud/data/instance-id")); got != v.InstanceID {
				t.Errorf("cloud-init instance-id %q, want %q", got, v.InstanceID)
			}
			v.MustRead("sudo -n test -d /var/lib/cloud/instances/" + v.InstanceID)
			if v.HostKey() == nil {
				t.Error("no host key recorded from the handshake")
			}
			t.Logf("guest NICs:\n%s", v.MustRead("ip -br addr"))
		})
	}
}
