package cloudinitreset

import (
	_ "embed"
	"fmt"
	"strconv"
	"strings"
)

// library is the guest side of the provisioner: a static POSIX sh library
// whose main carries out a plan (see the comments at its top). Go decides
// what the guest does (the plan); the library knows how.
//
//go:embed reset.sh
var library string

// planEnd is the here-document delimiter that ends the plan in a script;
// no record equals it (records start with a lowercase verb or with #).
const planEnd = "CLOUDIMG_PLAN"

// Script returns what is uploaded and run: the library, then its main
// reading plan (one record per line, each ending in a newline) on
// descriptor 3 from a here-document in the same file. The guest needs no
// other file.
func Script(plan string) string {
	return library + "\nmain 3<<'" + planEnd + "'\n" + plan + planEnd + "\n"
}

// planWriter writes a plan: one record per line, a verb and its arguments
// separated by single blanks. The library reads each record without
// evaluating it, so the only rules are the ones its parsing needs: no
// argument holds a newline or a NUL, and only a record's last argument may
// hold blanks or be empty (see rec and words). The first rule broken is
// kept in err.
type planWriter struct {
	sb  strings.Builder
	err error
}

// comment writes a line the library skips, for the reader of a plan.
func (w *planWriter) comment(text string) {
	w.check("#", []string{text}, false)
	w.sb.WriteString("# " + text + "\n")
}

// rec writes a record whose last argument may hold blanks (a path, a text).
func (w *planWriter) rec(verb string, args ...string) {
	w.check(verb, args, false)
	w.write(verb, args)
}

// words writes a record whose arguments the library splits into words: none
// may be empty or hold a blank or a glob character.
func (w *planWriter) words(verb string, args ...string) {
	w.check(verb, args, true)
	w.write(verb, args)
}

func (w *planWriter) write(verb string, args []string) {
	w.sb.WriteString(verb)
	for _, a := range args {
		w.sb.WriteString(" " + a)
	}
	w.sb.WriteString("\n")
}

func (w *planWriter) check(verb string, args []string, allWords bool) {
	for i, a := range args {
		last := i == len(args)-1 && !allWords
		bad := ""
		switch {
		case strings.ContainsAny(a, "\n\x00"):
			bad = "a newline or NUL"
		case last:
		case a == "":
			bad = "nothing"
		case strings.ContainsAny(a, " \t*?["):
			bad = "a blank or a glob character"
		}
		if bad != "" && w.err == nil {
			w.err = fmt.Errorf("plan: the %s record's argument %q holds %s", verb, a, bad)
		}
	}
}

// String returns the plan, or the first rule broken.
func (w *planWriter) String() (string, error) {
	return w.sb.String(), w.err
}

// The account files the reset locks, as shadow's tools do.
var lockedFiles = []string{"passwd", "shadow", "group", "gshadow", "subuid", "subgid"}

// plan writes the reset's plan: its records (reset.sh, reset_record) in the
// order the guest carries them out, step by step. In a dry run the plan
// takes no lock, starts no search and checks nothing at the end; the
// library prints what each change would be instead of making it.
func (d *applyData) plan() (string, error) {
	w := &planWriter{}
	mode := "apply"
	if d.DryRun {
		mode = "dry-run"
	}
	w.comment("cloudimg-cloudinit-reset: remove the build user " + d.User + " and reset the cloud-init state")
	w.words("reset", d.Nonce, mode)
	w.words("user", d.User, strconv.Itoa(d.UID), strconv.Itoa(d.RemovedGID))
	if d.Home != "" {
		w.rec("home", d.Home)
	}
	if d.Hostname {
		w.words("hostnames", d.HostNames...)
	}
	if len(d.NICMACs) > 0 {
		w.words("macs", d.NICMACs...)
	}
	w.words("protect", vitalPaths...)
	for _, f := range d.Inline {
		w.rec("data", f.Name, f.Base64) // an empty file's base64 is empty
	}

	// Nothing is changed before every file is known to be as it was read.
	w.words("step", "preflight")
	if !d.DryRun {
		w.words("lock", lockedFiles...)
	}
	// Each file must still be as read; a rewritten one (NewSHA set) also
	// names the upload that will replace it.
	for _, fs := range [][]fileChange{d.Accounts, d.SudoersWrite, d.SudoersRemove, d.EtcExpect, d.EtcWrite} {
		for _, f := range fs {
			w.rec("expect", f.OldSHA, f.Path)
			if f.NewSHA != "" {
				w.words("expect-new", f.NewSHA, f.Upload)
			}
		}
	}
	for _, f := range d.SudoersWrite {
		w.rec("visudo", f.Upload, f.Path)
	}
	w.rec("check", "unchanged-since-read", "ok", "the files to change still have the contents that were read")
	if !d.DryRun {
		w.words("start-owned-search")
		if d.RemoveRandomSeed {
			w.words("start-seed-stop")
		}
	}

	w.words("step", "accounts")
	for _, f := range d.Accounts {
		w.rec("stage", f.Upload, "keep", f.Path)
	}
	for _, f := range d.SudoersWrite {
		w.rec("stage", f.Upload, "0440", f.Path)
	}
	if len(d.Accounts)+len(d.SudoersWrite) > 0 {
		w.words("sync")
	}
	for _, f := range append(append([]fileChange{}, d.Accounts...), d.SudoersWrite...) {
		w.rec("install", f.Path)
	}
	for _, f := range d.SudoersRemove {
		w.rec("remove", f.Path)
	}
	w.words("unlock")

	w.words("step", "user-files")
	if d.Home != "" {
		w.words("remove-home")
	}
	for _, dir := range []string{"/var/mail", "/var/spool/mail", "/var/spool/cron/crontabs", "/var/spool/cron",
		"/var/lib/systemd/linger", "/var/lib/sudo/lectured", "/var/lib/AccountsService/users", "/var/lib/AccountsService/icons"} {
		w.rec("remove", dir+"/"+d.User)
	}
	if !d.KeepPasswdBackups {
		// The backups still hold the build user and its password hash.
		for _, name := range lockedFiles {
			w.rec("remove", "/etc/"+name+"-")
		}
	}

	// systemd reads /var/lib/dbus/machine-id as a fallback ID;
	// NetworkManager's secret key is its half of the host's identity
	// (stable IPv6 addresses, DHCP client IDs, cloned MACs), which it writes
	// anew when missing.
	w.words("step", "machine-id")
	w.words("set-machine-id", d.MachineID)
	w.rec("remove", "/var/lib/NetworkManager/secret_key")
	w.rec("remove-file", "/var/lib/dbus/machine-id")

	if d.Hostname {
		// /etc/hostname and /etc/hosts as the source image had them (see
		// HostnamePlan).
		w.words("step", "hostname")
		if len(d.EtcMove) > 0 {
			w.words("restore-etc", append([]string{d.EtcSavedDir}, d.EtcMove...)...)
		}
		for _, p := range d.EtcRemove {
			w.rec("remove", p)
		}
		for _, p := range d.EtcEmpty {
			w.rec("empty", p)
		}
		for _, f := range d.EtcWrite {
			w.rec("stage", f.Upload, "keep", f.Path)
			w.rec("install", f.Path)
		}
	}

	// Like `cloud-init clean --logs --configs all [--seed]`.
	w.words("step", "cloud-init")
	w.words("clean-cloud-state", keepSeed(d.RemoveCloudSeed))
	for _, p := range cloudInitFiles {
		w.rec("remove-glob", p)
	}
	w.words("run", "cloud-clean-hooks")

	w.words("step", "hygiene")
	if d.RemoveSSHHostKeys {
		w.rec("remove-glob", "/etc/ssh/ssh_host_*")
	}
	if d.RemoveRandomSeed {
		w.words("wait-seed-stop")
		w.rec("remove", "/var/lib/systemd/random-seed")
		w.rec("remove", "/var/lib/urandom/random-seed")
	}
	if d.RemoveDHCPLeases {
		for _, p := range dhcpLeases {
			w.rec("remove-glob", p)
		}
	}
	if d.CleanTmp {
		w.words("clean-tmp")
	}
	if d.RemoveShellHistory {
		w.words("remove-shell-history")
	}
	if d.CleanApt {
		w.words("run", "apt-get-clean")
		w.words("clean-apt-lists")
		for _, p := range []string{"/var/lib/apt/lists/partial/*", "/var/cache/apt/*.bin", "/var/cache/apt/archives/*.deb", "/var/cache/apt/archives/partial/*"} {
			w.rec("remove-glob", p)
		}
	}
	if d.CleanJournal {
		w.words("run", "journal-rotate")
		w.rec("remove-glob", "/var/log/journal/*")
	}
	for _, p := range d.ExtraPaths {
		w.rec("remove-extra", p)
	}
	if d.Search && !d.DryRun {
		keys := "all"
		if !d.RemoveSSHHostKeys {
			keys = "keep-host-keys"
		}
		w.words("start-traces-search", keys)
	}

	if d.IdentityPath != "" {
		w.words("step", "identity")
		w.rec("write-identity", d.IdentityUpload, d.IdentitySHA, d.IdentityPath)
	}

	w.words("step", "sync")
	w.words("sync")
	w.words("run", "fstrim")

	if d.DryRun {
		w.words("done")
		w.words("end")
		return w.String()
	}
	w.words("step", "verify")
	w.words("verify-keyed", "passwd")
	w.words("verify-keyed", "shadow")
	if d.KeptGroup {
		w.words("verify-members", "group", "4")
		w.words("verify-members", "gshadow", "3", "4")
	} else {
		w.words("verify-keyed", "group", "4")
		w.words("verify-keyed", "gshadow", "3", "4")
	}
	w.words("verify-keyed", "subuid")
	w.words("verify-keyed", "subgid")
	for _, f := range append(append([]fileChange{}, d.Accounts...), d.EtcVerify...) {
		w.rec("verify-sha", f.NewSHA, f.Path)
	}
	w.words("verify-sudoers")
	w.words("verify-home")
	w.words("verify-machine-id", d.MachineID)
	if d.Hostname {
		w.rec("hostname-summary", d.HostnameSummary)
		w.words("verify-build-hostname", d.EtcRemove...)
	}
	w.words("verify-network")
	w.words("verify-cloud-dir", keepSeed(d.RemoveCloudSeed))
	w.words("verify-statoverride")
	w.words("verify-dpkg-audit")
	w.words("note-owned-files")
	w.words("step", "report")
	w.words("done")
	if d.ShutdownAfter {
		w.words("poweroff", strconv.Itoa(d.ShutdownSecs))
	}
	w.words("end")
	return w.String()
}

func keepSeed(remove bool) string {
	if remove {
		return "all"
	}
	return "keep-seed"
}

// cloudInitFiles are what cloud-init wrote outside /var/lib/cloud: its logs
// and the network and SSH configuration it rendered (patterns).
var cloudInitFiles = []string{
	"/var/log/cloud-init.log*", "/var/log/cloud-init-output.log*",
	"/etc/netplan/50-cloud-init.yaml",
	"/etc/network/interfaces.d/50-cloud-init",
	"/etc/network/interfaces.d/50-cloud-init.cfg",
	"/etc/systemd/network/10-cloud-init-*.network",
	"/etc/NetworkManager/system-connections/cloud-init-*.nmconnection",
	"/etc/NetworkManager/conf.d/99-cloud-init.conf",
	"/etc/NetworkManager/conf.d/30-cloud-init-ip6-addr-gen-mode.conf",
	"/etc/ssh/sshd_config.d/50-cloud-init.conf",
}

// dhcpLeases are the DHCP clients' and networkd's DHCP server's leases
// (patterns).
var dhcpLeases = []string{
	"/var/lib/dhcp/*.leases", "/var/lib/dhcp/*.lease",
	"/var/lib/dhclient/*.lease*", "/var/lib/dhcpcd/*.lease*",
	"/var/lib/dhcpcd5/*.lease*", "/var/lib/NetworkManager/*.lease",
	"/var/lib/NetworkManager/dhclient-*",
	"/var/lib/systemd/network/dhcp-server-lease/*",
}
