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
	b, err := BuildApply(plan, got.SHA256, opts)
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
				"/etc/systemd/network/10-cloud-init-eth0.network",
				"/etc/NetworkManager/system-connections/cloud-init-eth0.nmconnection",
				"/etc/ssh/sshd_config.d/50-cloud-init.conf", "/etc/ssh/ssh_host_ed25519_key",
				"/etc/ssh/ssh_host_ed25519_key.pub", "/var/lib/systemd/random-seed",
				"/var/lib/dhcp/dhclient.eth0.leases", "/tmp/build-junk", "/tmp/.hidden", "/var/tmp/junk",
				"/root/.bash_history", "/root/.lesshst", "/home/deploy/.bash_history",
				"/tmp/cloudimg-reset.test",
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
			for _, n := range []string{"unchanged-since-read", "passwd", "shadow", "group", "gshadow", "subuid", "subgid", "sudoers", "home", "machine-id", "var-lib-cloud", "dpkg-statoverride", "dpkg-audit"} {
				if !slices.Contains(names, n) {
					t.Errorf("check %s missing; got %v", n, names)
				}
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
	}
	_, _, b := planFor(t, g, sh, "packer", opts)
	out, code := g.runScript(sh, g.stage(b))
	t.Logf("output:\n%s", out)
	res := ParseApply([]byte(out), "n0nce")
	if code != 0 || !res.OK {
		t.Fatalf("exit %d, failed %v", code, res.Failed())
	}
	if got := g.read("/etc/machine-id"); got != "uninitialized\n" {
		t.Errorf("/etc/machine-id = %q", got)
	}
	for _, p := range []string{"/etc/passwd-", "/etc/shadow-", "/etc/ssh/ssh_host_ed25519_key", "/var/lib/systemd/random-seed",
		"/var/lib/dhcp/dhclient.eth0.leases", "/tmp/build-junk", "/root/.bash_history", "/var/log/installer/syslog", "/var/lib/apt/lists/lock"} {
		if !g.exists(p) {
			t.Errorf("%s was removed", p)
		}
	}
	for _, p := range []string{"/var/lib/cloud/seed", "/var/lib/apt/lists/deb.debian.org_dists_bookworm_InRelease",
		"/var/cache/apt/pkgcache.bin", "/var/log/journal/0123456789abcdef0123456789abcdef", "/var/log/installer/a.log", "/srv/my data/cache file"} {
		if g.exists(p) {
			t.Errorf("%s still exists", p)
		}
	}
	if !g.exists("/var/log/journal") || !g.exists("/var/lib/cloud") {
		t.Error("/var/log/journal or /var/lib/cloud itself was removed")
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
	if len(f) != 1 || f[0].Name != "dpkg-statoverride" || !strings.Contains(f[0].Detail, "/opt/app(owner packer)") {
		t.Errorf("failed checks %+v", f)
	}
}

// TestApplyScriptAbsentUser: a user that is not there changes no account
// file, and the rest of the reset still runs.
func TestApplyScriptAbsentUser(t *testing.T) {
	sh := shells(t)[0]
	g := newGuest(t)
	_, plan, b := planFor(t, g, sh, "nosuchuser", defaultOptions())
	if plan.Present || len(b.Changed) != 0 {
		t.Fatalf("plan %+v changes %v", plan, b.Changed)
	}
	passwd := g.read("/etc/passwd")
	out, code := g.runScript(sh, g.stage(b))
	res := ParseApply([]byte(out), "n0nce")
	if code != 0 || !res.OK {
		t.Fatalf("exit %d\n%s", code, out)
	}
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
	out, code := g.runScript(sh, g.stage(b))
	res := ParseApply([]byte(out), "n0nce")
	if code != 0 || !res.OK {
		t.Fatalf("exit %d\n%s", code, out)
	}
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
	out, code := g.runScript(sh, g.stage(b))
	res := ParseApply([]byte(out), "n0nce")
	if code != 0 || !res.OK {
		t.Fatalf("exit %d\n%s", code, out)
	}
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
	out, code := g.runScript(sh, g.stage(b))
	res := ParseApply([]byte(out), "n0nce")
	if code != 0 || !res.OK {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if !strings.Contains(g.read("/etc/group"), "\npacker:x:1000:deploy\n") {
		t.Error("the kept group is gone")
	}
	if !strings.Contains(out, "CHECK group ok packer is in no member list (the group packer was kept)") {
		t.Errorf("output:\n%s", out)
	}
}
