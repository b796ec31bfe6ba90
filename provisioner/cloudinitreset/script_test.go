package cloudinitreset

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/accounts"
)

// defaultOptions are the apply options of an empty provisioner block.
func defaultOptions() ApplyOptions {
	return ApplyOptions{
		Nonce:              "n0nce",
		MachineID:          MachineIDEmpty,
		RemoveSSHHostKeys:  true,
		RemoveRandomSeed:   true,
		RemoveDHCPLeases:   true,
		CleanTmp:           true,
		RemoveShellHistory: true,
		ShutdownDelay:      5 * time.Second,
	}
}

// planFor collects from g and plans the removal of user.
func planFor(t *testing.T, g *guest, shell, user string, opts ApplyOptions) (*Collected, *accounts.Plan, *Bundle) {
	t.Helper()
	got := g.collect(shell)
	plan, err := accounts.RemoveUser(got.Files, user)
	if err != nil {
		t.Fatal(err)
	}
	opts.NICMACs = got.MACs
	b, err := BuildApply(plan, PlanHostname(got), got.SHA256, opts)
	if err != nil {
		t.Fatal(err)
	}
	return got, plan, b
}

// TestApplyScript runs the generated script for real against a throwaway
// root and checks every effect.
func TestApplyScript(t *testing.T) {
	for _, sh := range shells(t) {
		t.Run(filepath.Base(sh), func(t *testing.T) {
			g := newGuest(t)
			_, plan, b := planFor(t, g, sh, "packer", defaultOptions())
			script := g.stage(b)
			out, code := g.runScript(sh, script)
			t.Logf("output:\n%s", out)
			res := ParseApply([]byte(out), "n0nce")
			if code != 0 || !res.Done || !res.OK {
				t.Fatalf("exit %d, done %v ok %v, failed %v", code, res.Done, res.OK, res.Failed())
			}

			// Account files: the planned contents, owner and mode kept.
			for _, name := range accountFiles {
				want, _ := plan.File(name)
				if got := g.read("/etc/" + name); got != string(want) {
					t.Errorf("/etc/%s:\n%s\nwant:\n%s", name, got, want)
				}
				if strings.Contains(g.read("/etc/"+name), "packer") {
					t.Errorf("/etc/%s still names packer", name)
				}
			}
			assertMode(t, g, "/etc/shadow", 0o640, 0, 42)
			assertMode(t, g, "/etc/gshadow", 0o640, 0, 42)
			assertMode(t, g, "/etc/passwd", 0o644, 0, 0)
			for _, name := range accountFiles {
				for _, suffix := range []string{".lock", ".cloudimg-new"} {
					if g.exists("/etc/" + name + suffix) {
						t.Errorf("/etc/%s%s left behind", name, suffix)
					}
				}
			}

			gone := []string{
				"/etc/sudoers.d/90-cloud-init-users", "/home/packer", "/var/mail/packer",
				"/var/spool/cron/crontabs/packer", "/etc/passwd-", "/etc/shadow-", "/etc/group-",
				"/etc/gshadow-", "/etc/subuid-", "/etc/subgid-", "/var/lib/dbus/machine-id",
				"/var/lib/cloud/instances", "/var/lib/cloud/instance", "/var/lib/cloud/data",
				"/var/log/cloud-init.log", "/var/log/cloud-init-output.log", "/var/log/cloud-init.log.1.gz",
				"/etc/network/interfaces.d/50-cloud-init", "/etc/netplan/50-cloud-init.yaml",
				"/etc/udev/rules.d/70-persistent-net.rules",
				"/etc/systemd/network/10-cloud-init-eth0.network",
				"/etc/NetworkManager/system-connections/cloud-init-eth0.nmconnection",
				"/etc/ssh/sshd_config.d/50-cloud-init.conf", "/etc/ssh/ssh_host_ed25519_key",
				"/etc/ssh/ssh_host_ed25519_key.pub", "/var/lib/systemd/random-seed",
				"/var/lib/dhcp/dhclient.eth0.leases", "/tmp/build-junk", "/tmp/.hidden", "/var/tmp/junk",
				"/root/.bash_history", "/root/.lesshst", "/home/deploy/.bash_history",
				"/tmp/cloudimg-reset.test", "/var/lib/NetworkManager/secret_key",
				"/var/lib/systemd/network/dhcp-server-lease/br0",
			}
			for _, p := range gone {
				if g.exists(p) {
					t.Errorf("%s still exists", p)
				}
			}
			kept := []string{
				"/etc/sudoers.d/README", "/var/lib/cloud/seed/nocloud/meta-data", "/var/log/syslog",
				"/etc/netplan/01-mine.yaml", "/etc/network/interfaces", "/etc/ssh/sshd_config",
				"/root/.profile", "/home/deploy/.profile", "/opt/app/data", "/tmp", "/var/tmp",
				"/var/lib/systemd/network/dhcp-server-lease", "/var/lib/NetworkManager/NetworkManager.state",
				// Off by default:
				"/var/lib/apt/lists/deb.debian.org_dists_bookworm_InRelease", "/var/cache/apt/pkgcache.bin",
				"/var/log/journal/0123456789abcdef0123456789abcdef/system.journal",
			}
			for _, p := range kept {
				if !g.exists(p) {
					t.Errorf("%s was removed", p)
				}
			}
			if got := g.read("/etc/machine-id"); got != "" {
				t.Errorf("/etc/machine-id = %q, want empty", got)
			}
			if g.read("/etc/hostname") != "localhost\n" || g.read("/etc/hosts") != sourceHosts {
				t.Errorf("/etc/hostname %q or /etc/hosts %q is not the source image's", g.read("/etc/hostname"), g.read("/etc/hosts"))
			}
			assertMode(t, g, "/etc/hosts", 0o644, 0, 0)
			assertMode(t, g, "/etc/machine-id", 0o444, 0, 0)

			// The report.
			for _, p := range []string{"/home/packer", "/etc/sudoers.d/90-cloud-init-users", "/var/lib/cloud/instance", "/tmp/build-junk"} {
				if !slices.Contains(res.Removed, p) {
					t.Errorf("REMOVED %s missing from the report %v", p, res.Removed)
				}
			}
			for _, p := range []string{"/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow", "/etc/subuid", "/etc/subgid"} {
				if !slices.Contains(res.Changed, p) {
					t.Errorf("CHANGED %s missing from the report %v", p, res.Changed)
				}
			}
			var names []string
			for _, c := range res.Checks {
				names = append(names, c.Name)
			}
			for _, n := range []string{"unchanged-since-read", "passwd", "shadow", "group", "gshadow", "subuid", "subgid", "sudoers", "home", "machine-id", "build-hostname", "network", "var-lib-cloud", "dpkg-statoverride", "dpkg-audit"} {
				if !slices.Contains(names, n) {
					t.Errorf("check %s missing; got %v", n, names)
				}
			}
			// cloud-init's netplan file named the NIC's MAC address; it is
			// gone, and nothing else names it.
			if c := checkNamed(t, res, "network"); !c.OK || c.Detail != "no file under /etc, /var/lib/systemd/network, /var/lib/NetworkManager names the build VM's MAC address 52:54:00:ab:cd:ef" {
				t.Errorf("check %+v", c)
			}
			if isRoot() && !slices.ContainsFunc(res.Notes, func(n string) bool { return strings.Contains(n, "/opt/app/data") }) {
				t.Errorf("no note about /opt/app/data, still owned by UID 1000: %v", res.Notes)
			}
			// The search starts before the removals: what they removed is
			// not reported as left behind.
			for _, gone := range []string{"/home/packer", "/var/mail/packer", "/var/spool/cron/crontabs/packer"} {
				if slices.ContainsFunc(res.Notes, func(n string) bool { return strings.Contains(n, gone) }) {
					t.Errorf("a note names %s, which the reset removed: %v", gone, res.Notes)
				}
			}
		})
	}
}

func assertMode(t *testing.T, g *guest, p string, mode os.FileMode, uid, gid uint32) {
	t.Helper()
	fi, err := os.Stat(g.path(p))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), mode)
	}
	if !isRoot() {
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != uid || st.Gid != gid {
		t.Errorf("%s: owner %d:%d, want %d:%d", p, st.Uid, st.Gid, uid, gid)
	}
}

// TestApplyScriptOptions: the switchable parts, the other machine-id
// state, extra_paths and kept backups.
func TestApplyScriptOptions(t *testing.T) {
	sh := shells(t)[0]
	g := newGuest(t)
	g.write("/var/log/installer/syslog", "x", 0o644, 0, 0)
	g.write("/var/log/installer/a.log", "x", 0o644, 0, 0)
	g.write("/srv/my data/cache file", "x", 0o644, 0, 0)
	opts := ApplyOptions{
		Nonce:             "n0nce",
		MachineID:         MachineIDUninitialized,
		KeepPasswdBackups: true,
		RemoveCloudSeed:   true,
		CleanApt:          true,
		CleanJournal:      true,
		ExtraPaths:        []string{"/var/log/installer/*.log", "/srv/my data/cache file", "/does/not/exist"},
		Identity:          []byte(`{"build_id": "b1", "source_name": "basic"}` + "\n"),
	}
	_, _, b := planFor(t, g, sh, "packer", opts)
	_, res := g.mustApply(t, sh, b)
	if got := g.read("/etc/machine-id"); got != "uninitialized\n" {
		t.Errorf("/etc/machine-id = %q", got)
	}
	for _, p := range []string{"/etc/passwd-", "/etc/shadow-", "/etc/ssh/ssh_host_ed25519_key", "/var/lib/systemd/random-seed",
		"/var/lib/dhcp/dhclient.eth0.leases", "/tmp/build-junk", "/root/.bash_history", "/var/log/installer/syslog", "/var/lib/apt/lists/lock",
		"/var/lib/systemd/network/dhcp-server-lease/br0"} {
		if !g.exists(p) {
			t.Errorf("%s was removed", p)
		}
	}
	for _, p := range []string{"/var/lib/cloud/seed", "/var/lib/apt/lists/deb.debian.org_dists_bookworm_InRelease", "/var/lib/NetworkManager/secret_key",
		"/var/cache/apt/pkgcache.bin", "/var/log/journal/0123456789abcdef0123456789abcdef", "/var/log/installer/a.log", "/srv/my data/cache file"} {
		if g.exists(p) {
			t.Errorf("%s still exists", p)
		}
	}
	if !g.exists("/var/log/journal") || !g.exists("/var/lib/cloud") {
		t.Error("/var/log/journal or /var/lib/cloud itself was removed")
	}
	// The kept host key's public half ends in root@packer-web: with
	// remove_ssh_host_keys off it is not searched.
	if !g.exists("/etc/ssh/ssh_host_ed25519_key.pub") {
		t.Error("the host key was removed")
	}
	if c := checkNamed(t, res, "build-hostname"); !c.OK {
		t.Errorf("check %+v", c)
	}
	if g.read("/etc/hostname") != "localhost\n" || g.read("/etc/hosts") != sourceHosts {
		t.Error("/etc/hostname or /etc/hosts was not restored")
	}
	// The identity file, world-readable in a world-readable directory.
	if got := g.read("/etc/cloudimg/image.json"); got != string(opts.Identity) {
		t.Errorf("/etc/cloudimg/image.json = %q, want %q", got, opts.Identity)
	}
	assertMode(t, g, "/etc/cloudimg/image.json", 0o644, uint32(os.Getuid()), uint32(os.Getgid()))
	if st, err := os.Stat(g.path("/etc/cloudimg")); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("/etc/cloudimg: %v, mode %v; want 0755", err, st.Mode())
	}
	if c := checkNamed(t, res, "identity"); !c.OK {
		t.Errorf("check %+v", c)
	}
	if !slices.Contains(res.Changed, "/etc/cloudimg/image.json") {
		t.Errorf("the report's changed files %q lack /etc/cloudimg/image.json", res.Changed)
	}
}

// TestApplyScriptDryRun: a dry run changes nothing (but its own temporary
// directory, which it removes) and reports what it would do.
func TestApplyScriptDryRun(t *testing.T) {
	for _, sh := range shells(t) {
		t.Run(filepath.Base(sh), func(t *testing.T) {
			g := newGuest(t)
			opts := defaultOptions()
			opts.DryRun = true
			opts.CleanApt, opts.CleanJournal = true, true
			opts.ExtraPaths = []string{"/opt/app"}
			_, _, b := planFor(t, g, sh, "packer", opts)
			script := g.stage(b)
			before := g.snapshot("/tmp/cloudimg-reset.test")
			out, code := g.runScript(sh, script)
			t.Logf("output:\n%s", out)
			if after := g.snapshot("/tmp/cloudimg-reset.test"); after != before {
				t.Errorf("the dry run changed the guest:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			if g.exists("/tmp/cloudimg-reset.test") {
				t.Error("the dry run left its temporary directory")
			}
			res := ParseApply([]byte(out), "n0nce")
			if code != 0 || !res.Done || !res.OK {
				t.Fatalf("exit %d, done %v ok %v", code, res.Done, res.OK)
			}
			for _, want := range []string{"WOULD-CHANGE /etc/passwd", "WOULD-REMOVE /home/packer", "WOULD-REMOVE /etc/sudoers.d/90-cloud-init-users",
				"WOULD-SET /etc/machine-id empty", "WOULD-REMOVE /opt/app", "WOULD-REMOVE /var/lib/cloud/instance"} {
				if !strings.Contains(out, want+"\n") {
					t.Errorf("output lacks %q", want)
				}
			}
			for _, bad := range []string{"REMOVED ", "CHANGED ", "\nSET "} {
				if strings.Contains(out, bad) {
					t.Errorf("a dry run printed %q", bad)
				}
			}
		})
	}
}

// TestApplyScriptAbortsOnChange: a file that changed after it was read
// stops the script before anything changes.
func TestApplyScriptAbortsOnChange(t *testing.T) {
	sh := shells(t)[0]
	g := newGuest(t)
	_, _, b := planFor(t, g, sh, "packer", defaultOptions())
	script := g.stage(b)
	g.write("/etc/group", g.read("/etc/group")+"newgroup:x:1234:\n", 0o644, 0, 0)
	before := g.snapshot("/tmp/cloudimg-reset.test")
	out, code := g.runScript(sh, script)
	res := ParseApply([]byte(out), "n0nce")
	if code != 3 || !strings.Contains(res.Abort, "/etc/group changed since it was read") {
		t.Fatalf("exit %d, abort %q\n%s", code, res.Abort, out)
	}
	if after := g.snapshot("/tmp/cloudimg-reset.test"); after != before {
		t.Errorf("the aborted script changed the guest:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestApplyScriptAbortsOnMissingFile: a file the plan rewrites that is gone
// stops the script before any change, naming the file.
func TestApplyScriptAbortsOnMissingFile(t *testing.T) {
	sh := shells(t)[0]
	g := newGuest(t)
	_, _, b := planFor(t, g, sh, "packer", defaultOptions())
	script := g.stage(b)
	if err := os.Remove(g.path("/etc/subgid")); err != nil {
		t.Fatal(err)
	}
	before := g.snapshot("/tmp/cloudimg-reset.test")
	out, code := g.runScript(sh, script)
	res := ParseApply([]byte(out), "n0nce")
	if code != 3 || res.Abort != "/etc/subgid is missing; nothing was changed" {
		t.Fatalf("exit %d, abort %q\n%s", code, res.Abort, out)
	}
	if after := g.snapshot("/tmp/cloudimg-reset.test"); after != before {
		t.Errorf("the aborted script changed the guest:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestApplyScriptLocks: a live lock (shadow's <file>.lock) stops the
// script; a stale one is taken over.
func TestApplyScriptLocks(t *testing.T) {
	sh := shells(t)[0]
	t.Run("live", func(t *testing.T) {
		g := newGuest(t)
		_, _, b := planFor(t, g, sh, "packer", defaultOptions())
		script := g.stage(b)
		g.write("/etc/shadow.lock", strconv.Itoa(os.Getpid()), 0o600, 0, 0)
		out, code := g.runScript(sh, script)
		res := ParseApply([]byte(out), "n0nce")
		if code != 3 || !strings.Contains(res.Abort, "/etc/shadow is locked by process") {
			t.Fatalf("exit %d, abort %q\n%s", code, res.Abort, out)
		}
		if !g.exists("/etc/shadow.lock") || g.exists("/etc/passwd.lock") {
			t.Error("the script removed a live lock or left its own")
		}
		if !strings.Contains(g.read("/etc/passwd"), "packer:") {
			t.Error("/etc/passwd changed")
		}
	})
	t.Run("stale", func(t *testing.T) {
		g := newGuest(t)
		_, _, b := planFor(t, g, sh, "packer", defaultOptions())
		script := g.stage(b)
		g.write("/etc/passwd.lock", "2147483646", 0o600, 0, 0)
		out, code := g.runScript(sh, script)
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, out)
		}
		if g.exists("/etc/passwd.lock") {
			t.Error("the stale lock is still there")
		}
	})
}

// TestApplyScriptFailedCheck: a stat override that names the removed user
// fails the dpkg-statoverride check, and the script exits 1.
func TestApplyScriptFailedCheck(t *testing.T) {
	sh := shells(t)[0]
	g := newGuest(t)
	g.write("/var/lib/dpkg/statoverride", "root _chrony 750 /var/log/chrony\npacker root 750 /opt/app\n", 0o644, 0, 0)
	_, _, b := planFor(t, g, sh, "packer", defaultOptions())
	out, code := g.runScript(sh, g.stage(b))
	res := ParseApply([]byte(out), "n0nce")
	if code != 1 || !res.Done || res.OK {
		t.Fatalf("exit %d done %v ok %v\n%s", code, res.Done, res.OK, out)
	}
	f := res.Failed()
	if len(f) != 1 || f[0].Name != "dpkg-statoverride" || !strings.Contains(f[0].Detail, "/opt/app (owner packer: the build user, removed by this reset)") {
		t.Errorf("failed checks %+v", f)
	}
}

// TestApplyScriptStatOverrideMessage: the dpkg-statoverride check names
// each override whose owner or group is missing, says why, and says how to
// fix it: the check runs after the user is gone, so the fix goes into a
// provisioner before the reset.
func TestApplyScriptStatOverrideMessage(t *testing.T) {
	const fix = ". dpkg refuses every package install and upgrade while an override names a missing account. In a provisioner before cloudimg-cloudinit-reset, run "
	for _, tc := range []struct {
		name, db string // db: "" for no file
		ok       bool
		detail   string
	}{
		{"owner", "root _chrony 750 /var/log/chrony\npacker root 750 /opt/app\n", false,
			"unknown owner or group: /opt/app (owner packer: the build user, removed by this reset)" + fix +
				"`sudo dpkg-statoverride --remove /opt/app` and chown /opt/app to an account the image keeps, or re-add the override for such an account " +
				"(`sudo dpkg-statoverride --remove /opt/app && sudo dpkg-statoverride --update --add <user> <group> 750 /opt/app`)"},
		{"several", "packer packer 2750 /opt/app\nroot ghosts 755 /srv/my dir\nroot root 755 /srv/fine\n", false,
			"unknown owner or group: /opt/app (owner packer: the build user, removed by this reset; group packer: the build user's group, removed by this reset), " +
				"/srv/my dir (group ghosts: no such group)" + fix +
				"`sudo dpkg-statoverride --remove <path>` for each path and chown it to an account the image keeps, or re-add the override for such an account " +
				"(`sudo dpkg-statoverride --remove <path> && sudo dpkg-statoverride --update --add <user> <group> <mode> <path>`)"},
		{"another user", "nosuchuser root 700 /var/lib/thing\n", false,
			"unknown owner or group: /var/lib/thing (owner nosuchuser: no such user)" + fix +
				"`sudo dpkg-statoverride --remove /var/lib/thing` and chown /var/lib/thing to an account the image keeps, or re-add the override for such an account " +
				"(`sudo dpkg-statoverride --remove /var/lib/thing && sudo dpkg-statoverride --update --add <user> <group> 700 /var/lib/thing`)"},
		{"numeric IDs", "#1000 #1000 750 /opt/app\nroot _chrony 750 /var/log/chrony\n", true, "every owner and group resolves"},
		{"empty", "", true, "no stat overrides"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sh := shells(t)[0]
			g := newGuest(t)
			if tc.db == "" {
				if err := os.Remove(g.path("/var/lib/dpkg/statoverride")); err != nil {
					t.Fatal(err)
				}
			} else {
				g.write("/var/lib/dpkg/statoverride", tc.db, 0o644, 0, 0)
			}
			_, _, b := planFor(t, g, sh, "packer", defaultOptions())
			out, _ := g.runScript(sh, g.stage(b))
			c := checkNamed(t, ParseApply([]byte(out), "n0nce"), "dpkg-statoverride")
			if c.OK != tc.ok || c.Detail != tc.detail {
				t.Errorf("check ok %v, detail\n%s\nwant ok %v, detail\n%s", c.OK, c.Detail, tc.ok, tc.detail)
			}
		})
	}
}

// TestApplyScriptAbsentUser: a user that is not there changes no account
// file, and the rest of the reset still runs.
func TestApplyScriptAbsentUser(t *testing.T) {
	sh := shells(t)[0]
	g := newGuest(t)
	_, plan, b := planFor(t, g, sh, "nosuchuser", defaultOptions())
	if plan.Present || !slices.Equal(b.Changed, []string{"/etc/hostname", "/etc/hosts"}) {
		t.Fatalf("plan %+v changes %v", plan, b.Changed)
	}
	passwd := g.read("/etc/passwd")
	g.mustApply(t, sh, b)
	if g.read("/etc/passwd") != passwd || !g.exists("/home/packer") {
		t.Error("an absent user's reset touched the accounts")
	}
	if g.exists("/var/lib/cloud/instance") {
		t.Error("the cloud-init reset did not run")
	}
}

// TestApplyScriptKeepsForeignHome: a home directory that the user does not
// own is kept, like userdel does.
func TestApplyScriptKeepsForeignHome(t *testing.T) {
	if !isRoot() {
		t.Skip("needs root to set owners")
	}
	sh := shells(t)[0]
	g := newGuest(t)
	g.chown("/home/packer", 1001, 1001)
	_, _, b := planFor(t, g, sh, "packer", defaultOptions())
	_, res := g.mustApply(t, sh, b)
	if !g.exists("/home/packer") {
		t.Error("a home owned by another user was removed")
	}
	if !slices.ContainsFunc(res.Notes, func(s string) bool { return strings.Contains(s, "kept the home /home/packer") }) {
		t.Errorf("no note about the kept home: %v", res.Notes)
	}
}

// TestApplyScriptRewritesSudoers: a cloud-init drop-in with rules for
// another user too is rewritten (mode 0440), not removed.
func TestApplyScriptRewritesSudoers(t *testing.T) {
	sh := shells(t)[0]
	g := newGuest(t)
	g.write("/etc/sudoers.d/90-cloud-init-users", "# Created by cloud-init v. 22.4.2\n\n# User rules for packer\npacker ALL=(ALL) NOPASSWD:ALL\n\n# User rules for admin\nadmin ALL=(ALL) ALL\n", 0o644, 0, 0)
	_, _, b := planFor(t, g, sh, "packer", defaultOptions())
	_, res := g.mustApply(t, sh, b)
	if got := g.read("/etc/sudoers.d/90-cloud-init-users"); got != "# Created by cloud-init v. 22.4.2\n\n# User rules for admin\nadmin ALL=(ALL) ALL\n" {
		t.Errorf("drop-in %q", got)
	}
	assertMode(t, g, "/etc/sudoers.d/90-cloud-init-users", 0o440, 0, 0)
	if !slices.Contains(res.Changed, "/etc/sudoers.d/90-cloud-init-users") {
		t.Errorf("changed %v", res.Changed)
	}
}

// TestApplyScriptKeptGroup: a personal group with another member is kept;
// the checks then only require that the user is in no member list.
func TestApplyScriptKeptGroup(t *testing.T) {
	sh := shells(t)[0]
	g := newGuest(t)
	g.write("/etc/group", strings.Replace(g.read("/etc/group"), "\npacker:x:1000:\n", "\npacker:x:1000:deploy\n", 1), 0o644, 0, 0)
	_, plan, b := planFor(t, g, sh, "packer", defaultOptions())
	if plan.KeptGroupReason == "" {
		t.Fatal("the group was not kept")
	}
	out, _ := g.mustApply(t, sh, b)
	if !strings.Contains(g.read("/etc/group"), "\npacker:x:1000:deploy\n") {
		t.Error("the kept group is gone")
	}
	if !strings.Contains(out, "CHECK group ok packer is in no member list (the group packer was kept)") {
		t.Errorf("output:\n%s", out)
	}
}

// checkNamed returns the check called name in res, or fails the test.
func checkNamed(t *testing.T, res *ApplyResult, name string) Check {
	t.Helper()
	for _, c := range res.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %s in %+v", name, res.Checks)
	return Check{}
}

// TestApplyScriptHostnameRestored: /etc/hostname and /etc/hosts come back
// from the seed's copy with its contents, mode and owner, and the copy goes
// with the rest of /var/lib/cloud.
func TestApplyScriptHostnameRestored(t *testing.T) {
	for _, sh := range shells(t) {
		t.Run(filepath.Base(sh), func(t *testing.T) {
			g := newGuest(t)
			g.write(savedDir+"/hosts", sourceHosts, 0o604, 0, 4)
			g.write(savedDir+"/hostname", "localhost\n", 0o640, 0, 4)
			_, _, b := planFor(t, g, sh, "packer", defaultOptions())
			_, res := g.mustApply(t, sh, b)
			if got := g.read("/etc/hosts"); got != sourceHosts {
				t.Errorf("/etc/hosts:\n%s\nwant the source image's:\n%s", got, sourceHosts)
			}
			if got := g.read("/etc/hostname"); got != "localhost\n" {
				t.Errorf("/etc/hostname %q", got)
			}
			assertMode(t, g, "/etc/hosts", 0o604, 0, 4)
			assertMode(t, g, "/etc/hostname", 0o640, 0, 4)
			if g.exists(savedDir) {
				t.Errorf("%s is still there", savedDir)
			}
			for _, p := range []string{"/etc/hostname", "/etc/hosts"} {
				if !slices.Contains(res.Changed, p) {
					t.Errorf("CHANGED %s missing: %v", p, res.Changed)
				}
			}
			c := checkNamed(t, res, "build-hostname")
			if !c.OK || c.Detail != "no file under /etc names packer-web (restored from the source image's copy: /etc/hostname, /etc/hosts)" {
				t.Errorf("check %+v", c)
			}
		})
	}
}

// TestApplyScriptHostnameAbsent: a file the source image did not have
// (recorded as <name>.absent) is removed.
func TestApplyScriptHostnameAbsent(t *testing.T) {
	sh := shells(t)[0]
	g := newGuest(t)
	if err := os.Remove(g.path(savedDir + "/hostname")); err != nil {
		t.Fatal(err)
	}
	g.write(savedDir+"/hostname.absent", "", 0o644, 0, 0)
	_, _, b := planFor(t, g, sh, "packer", defaultOptions())
	_, res := g.mustApply(t, sh, b)
	if g.exists("/etc/hostname") || !slices.Contains(res.Removed, "/etc/hostname") {
		t.Errorf("/etc/hostname was not removed; removed %v", res.Removed)
	}
	if g.read("/etc/hosts") != sourceHosts {
		t.Error("/etc/hosts was not restored")
	}
}

// TestApplyScriptHostnameFallback: without the seed's copy (another
// builder, the user's own seed) /etc/hostname is emptied, as Debian ships
// it, and the build's names are taken out of /etc/hosts; the other lines
// stay.
func TestApplyScriptHostnameFallback(t *testing.T) {
	for _, sh := range shells(t) {
		t.Run(filepath.Base(sh), func(t *testing.T) {
			g := newGuest(t)
			if err := os.RemoveAll(g.path(savedDir)); err != nil {
				t.Fatal(err)
			}
			g.write("/etc/hosts", buildHosts+"10.0.0.1 db Packer-Web # the build's alias\n", 0o644, 0, 0)
			g.write("/etc/hostname", "packer-web\n", 0o604, 0, 4)
			_, _, b := planFor(t, g, sh, "packer", defaultOptions())
			_, res := g.mustApply(t, sh, b)
			if got := g.read("/etc/hostname"); got != "" {
				t.Errorf("/etc/hostname %q, want empty", got)
			}
			assertMode(t, g, "/etc/hostname", 0o604, 0, 4)
			want := strings.Replace(buildHosts, "127.0.1.1 packer-web packer-web\n", "", 1) + "10.0.0.1\tdb # the build's alias\n"
			if got := g.read("/etc/hosts"); got != want {
				t.Errorf("/etc/hosts:\n%s\nwant:\n%s", got, want)
			}
			c := checkNamed(t, res, "build-hostname")
			if !c.OK || !strings.Contains(c.Detail, "no saved copy of the source's files: /etc/hostname emptied, the build's names taken out of /etc/hosts") {
				t.Errorf("check %+v", c)
			}
		})
	}
}

// TestApplyScriptHostnameLeft: a file under /etc that still names the
// build host (in any case, as a word) fails the check, and the build.
func TestApplyScriptHostnameLeft(t *testing.T) {
	for _, sh := range shells(t) {
		t.Run(filepath.Base(sh), func(t *testing.T) {
			g := newGuest(t)
			g.write("/etc/mailname", "packer-web\n", 0o644, 0, 0)
			g.write("/etc/motd", "Welcome to PACKER-WEB.\n", 0o644, 0, 0)
			g.write("/etc/app/deep/conf", "peer=packer-web:8080\n", 0o600, 0, 0)
			g.write("/etc/not-a-word", "packer-webserver xpacker-web packer_web\n", 0o644, 0, 0)
			g.symlink("/opt/app/data", "/etc/link-to-outside") // not followed
			g.write("/opt/app/data", "packer-web\n", 0o644, 1000, 1000)
			_, _, b := planFor(t, g, sh, "packer", defaultOptions())
			out, code := g.runScript(sh, g.stage(b))
			t.Logf("output:\n%s", out)
			res := ParseApply([]byte(out), "n0nce")
			if code != 1 || !res.Done || res.OK {
				t.Fatalf("exit %d done %v ok %v", code, res.Done, res.OK)
			}
			f := res.Failed()
			if len(f) != 1 || f[0].Name != "build-hostname" {
				t.Fatalf("failed checks %+v", f)
			}
			for _, p := range []string{"/etc/mailname", "/etc/motd", "/etc/app/deep/conf"} {
				if !strings.Contains(f[0].Detail, " "+p) {
					t.Errorf("the detail does not name %s: %s", p, f[0].Detail)
				}
			}
			for _, p := range []string{"/etc/not-a-word", "/etc/link-to-outside", "/etc/hosts", "/etc/hostname"} {
				if strings.Contains(f[0].Detail, p+" ") || strings.HasSuffix(f[0].Detail, p) {
					t.Errorf("the detail names %s: %s", p, f[0].Detail)
				}
			}
			if !strings.HasPrefix(f[0].Detail, "the build host name packer-web is still in: ") {
				t.Errorf("detail %q", f[0].Detail)
			}
		})
	}
}

// TestApplyScriptHostnameNothingToLookFor: a guest whose hostname was never
// set by cloud-init (localhost) has no build name to look for.
func TestApplyScriptHostnameNothingToLookFor(t *testing.T) {
	sh := shells(t)[0]
	g := newGuest(t)
	g.write("/proc/sys/kernel/hostname", "localhost\n", 0o644, 0, 0)
	if err := os.Remove(g.path("/var/lib/cloud/data/set-hostname")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(g.path(savedDir)); err != nil {
		t.Fatal(err)
	}
	g.write("/etc/hostname", "localhost\n", 0o644, 0, 0)
	g.write("/etc/hosts", sourceHosts, 0o644, 0, 0)
	if err := os.Remove(g.path("/sys/class/net/ens3/device")); err != nil { // no NIC either
		t.Fatal(err)
	}
	_, _, b := planFor(t, g, sh, "packer", defaultOptions())
	if strings.Contains(b.Plan, "\nstart-traces-search") {
		t.Error("the script searches for nothing")
	}
	_, res := g.mustApply(t, sh, b)
	if g.read("/etc/hostname") != "localhost\n" || g.read("/etc/hosts") != sourceHosts {
		t.Error("the files changed")
	}
	c := checkNamed(t, res, "build-hostname")
	if !c.OK || !strings.HasPrefix(c.Detail, "no build host name to look for (") || !strings.Contains(c.Detail, "localhost (a loopback name)") {
		t.Errorf("check %+v", c)
	}
	if c := checkNamed(t, res, "network"); !c.OK || c.Detail != "no NIC MAC address to look for" {
		t.Errorf("check %+v", c)
	}
}

// TestApplyScriptNetworkLeft: a file under /etc, or in networkd's or
// NetworkManager's state, that still names the build VM's NIC by its MAC
// address (any case, as a word) fails the network check; the image's own
// files that match by name, other addresses and other directories do not.
// The one search serves both checks: each lists only its own files.
func TestApplyScriptNetworkLeft(t *testing.T) {
	for _, sh := range shells(t) {
		t.Run(filepath.Base(sh), func(t *testing.T) {
			g := newGuest(t)
			// Without cloud-init's ENI file the udev rules are not cloud-init's
			// to remove: they are evidence.
			if err := os.Remove(g.path("/etc/network/interfaces.d/50-cloud-init")); err != nil {
				t.Fatal(err)
			}
			// A copy of cloud-init's file, `netplan set` output, a networkd
			// file, udev rules, NetworkManager's state.
			g.write("/etc/netplan/90-copied.yaml", cloudInitNetplan, 0o600, 0, 0)
			g.write("/etc/netplan/70-netplan-set.yaml", "network:\n  ethernets:\n    eth0:\n      match:\n        macaddress: \"52:54:00:ab:cd:ef\"\n", 0o600, 0, 0)
			g.write("/etc/systemd/network/20-wired.network", "[Match]\nMACAddress=52:54:00:ab:cd:ef\n[Network]\nDHCP=yes\n", 0o644, 0, 0)
			g.write("/etc/udev/rules.d/70-persistent-net.rules", `SUBSYSTEM=="net", ATTR{address}=="52:54:00:ab:cd:ef", NAME="eth0"`+"\n", 0o644, 0, 0)
			g.write("/var/lib/NetworkManager/no-auto-default.state", "52:54:00:Ab:Cd:Ef,\n", 0o644, 0, 0)
			g.write("/var/lib/systemd/network/other", "MAC=52:54:00:ab:cd:ef\n", 0o644, 0, 0)
			// Not evidence: the bridge's address, part of a longer word,
			// outside the searched directories.
			g.write("/etc/network/interfaces.d/br0", "iface br0 inet dhcp\n  hwaddress ether 02:42:ac:11:00:01\n", 0o644, 0, 0)
			g.write("/etc/not-a-word", "52:54:00:ab:cd:ef7\n", 0o644, 0, 0)
			g.write("/var/lib/misc/elsewhere", "52:54:00:ab:cd:ef\n", 0o644, 0, 0)
			// The build's host name, in a file of its own and in one with
			// the address too; in networkd's state it is not looked for.
			g.write("/etc/mailname", "packer-web\n", 0o644, 0, 0)
			g.write("/etc/NetworkManager/system-connections/wired.nmconnection", "[connection]\nid=packer-web\n[ethernet]\nmac-address=52:54:00:AB:CD:EF\n", 0o600, 0, 0)
			g.write("/var/lib/systemd/network/hostname-only", "packer-web\n", 0o644, 0, 0)

			_, _, b := planFor(t, g, sh, "packer", defaultOptions())
			out, code := g.runScript(sh, g.stage(b))
			t.Logf("output:\n%s", out)
			res := ParseApply([]byte(out), "n0nce")
			if code != 1 || !res.Done || res.OK {
				t.Fatalf("exit %d done %v ok %v", code, res.Done, res.OK)
			}
			if f := res.Failed(); len(f) != 2 {
				t.Errorf("failed checks %+v", f)
			}
			c := checkNamed(t, res, "network")
			wantFiles := []string{"/etc/netplan/90-copied.yaml", "/etc/netplan/70-netplan-set.yaml", "/etc/systemd/network/20-wired.network",
				"/etc/udev/rules.d/70-persistent-net.rules", "/var/lib/NetworkManager/no-auto-default.state", "/var/lib/systemd/network/other",
				"/etc/NetworkManager/system-connections/wired.nmconnection"}
			const prefix = "the build VM's MAC address 52:54:00:ab:cd:ef is still in: "
			const suffix = " (a clone's NIC has another address: configuration that matches this one does not apply to it)"
			if c.OK || !strings.HasPrefix(c.Detail, prefix) || !strings.HasSuffix(c.Detail, suffix) {
				t.Fatalf("check %+v", c)
			}
			got := strings.Fields(strings.TrimSuffix(strings.TrimPrefix(c.Detail, prefix), suffix))
			slices.Sort(got)
			slices.Sort(wantFiles)
			if !slices.Equal(got, wantFiles) {
				t.Errorf("network lists %v, want %v", got, wantFiles)
			}
			h := checkNamed(t, res, "build-hostname")
			if h.OK || !strings.HasPrefix(h.Detail, "the build host name packer-web is still in: ") {
				t.Fatalf("check %+v", h)
			}
			for _, p := range []string{"/etc/mailname", "/etc/NetworkManager/system-connections/wired.nmconnection"} {
				if !strings.Contains(h.Detail, " "+p+" ") {
					t.Errorf("build-hostname does not name %s: %s", p, h.Detail)
				}
			}
			for _, p := range []string{"/etc/netplan/90-copied.yaml", "/var/lib/systemd/network/hostname-only"} {
				if strings.Contains(h.Detail, p) {
					t.Errorf("build-hostname names %s: %s", p, h.Detail)
				}
			}
			// Nothing is changed for them: only the address is evidence.
			if g.read("/etc/netplan/90-copied.yaml") != cloudInitNetplan || !g.exists("/etc/netplan/01-mine.yaml") {
				t.Error("the check changed a file")
			}
		})
	}
}

// TestApplyScriptNetworkOnly: without a build host name to look for, the
// search still looks for the MAC address (and lists every file it found).
func TestApplyScriptNetworkOnly(t *testing.T) {
	sh := shells(t)[0]
	g := newGuest(t)
	g.write("/proc/sys/kernel/hostname", "localhost\n", 0o644, 0, 0)
	if err := os.Remove(g.path("/var/lib/cloud/data/set-hostname")); err != nil {
		t.Fatal(err)
	}
	g.write("/etc/netplan/90-copied.yaml", cloudInitNetplan, 0o600, 0, 0)
	_, _, b := planFor(t, g, sh, "packer", defaultOptions())
	if !strings.Contains(b.Plan, "\nstart-traces-search") {
		t.Error("the script does not search")
	}
	out, _ := g.runScript(sh, g.stage(b))
	res := ParseApply([]byte(out), "n0nce")
	if c := checkNamed(t, res, "network"); c.OK || !strings.HasPrefix(c.Detail, "the build VM's MAC address 52:54:00:ab:cd:ef is still in: /etc/netplan/90-copied.yaml (") {
		t.Errorf("check %+v\n%s", c, out)
	}
	if c := checkNamed(t, res, "build-hostname"); !c.OK {
		t.Errorf("check %+v", c)
	}
}
