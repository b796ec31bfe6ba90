package cloudinitreset

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/cidata"
)

// The build VM's hostname must not survive the reset: cloud-init wrote it
// into /etc/hostname (and, with manage_etc_hosts, /etc/hosts), and every
// clone of the image would come up with it. The cloudimg-kvm seed saves
// both files on the first boot, before cloud-init names the build host in
// them (see cidata.SavedEtcDir); the reset moves that copy back. Without a
// copy (another builder, the user's own seed) it falls back to removing the
// build's names: /etc/hostname is emptied when it holds one (as Debian's
// images ship it) and the names are taken out of /etc/hosts. Either way the
// apply script then looks for the names as words in every file under /etc.

// Guest paths the collect script reads for the hostname reset, besides the
// seed's copy (cidata.SavedEtcDir) and the kernel's hostname. It reads
// /etc/hostname and /etc/hosts only when there is no copy: only the
// fallback needs them, and each file read costs a process.
const (
	setHostnamePath = "/var/lib/cloud/data/set-hostname" // cloud-init's cc_set_hostname record (JSON)
	etcHostname     = "/etc/hostname"
	etcHosts        = "/etc/hosts"
)

// How the reset deals with one of /etc/hostname and /etc/hosts.
const (
	etcFromSaved = "saved"   // move the saved copy back
	etcAbsent    = "absent"  // the source image had no such file: remove it
	etcEmpty     = "empty"   // fallback for /etc/hostname: truncate it
	etcRewrite   = "rewrite" // fallback for /etc/hosts: new contents without the build's names
)

// Values of HostnameReport.Restore.
const (
	RestoreSavedCopy = "saved-copy"
	RestoreFallback  = "fallback"
)

// etcRestore is what happens to one file.
type etcRestore struct {
	Path    string // /etc/hostname or /etc/hosts
	Action  string // etcFromSaved, etcAbsent, etcEmpty or etcRewrite
	Saved   string // the saved copy (etcFromSaved)
	Upload  string // name in the temporary directory (etcRewrite)
	OldSHA  string // sha256 the file to move or rewrite must still have
	NewSHA  string // sha256 of the result (not for etcAbsent)
	Old     []byte // etcEmpty, etcRewrite: contents before, for the diff
	Content []byte // etcRewrite: the new contents
}

// HostnamePlan is how the reset puts back /etc/hostname and /etc/hosts and
// which names the apply script then looks for under /etc.
type HostnamePlan struct {
	// Names are the build's host names (short name, fqdn, and the kernel's
	// hostname when it differs), lowercase, in that order.
	Names []string
	// Skipped are names found but not looked for, each with the reason.
	Skipped []string
	// Restore is RestoreSavedCopy when the seed's copy was found (for at
	// least one of the two files), else RestoreFallback.
	Restore  string
	Files    []etcRestore
	Messages []string
	// Summary says, in the build-hostname check's detail, how the files
	// were dealt with.
	Summary string
}

// HostnameReport is the part of the report about the hostname reset.
type HostnameReport struct {
	BuildNames []string `json:"build_names"` // looked for as words under /etc
	Restore    string   `json:"restore"`     // "saved-copy" or "fallback"
}

// Report returns the report's view of p.
func (p *HostnamePlan) Report() *HostnameReport {
	return &HostnameReport{BuildNames: emptyIfNil(p.Names), Restore: p.Restore}
}

// hostnameRE: what a host name may hold. Anything else is not looked for
// (the names go into the apply script, and into grep's patterns).
var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})$`)

// loopbackNames are in every /etc/hosts; they never name a build.
var loopbackNames = []string{
	"localhost", "localhost.localdomain", "localhost4", "localhost4.localdomain4",
	"localhost6", "localhost6.localdomain6", "ip6-localhost", "ip6-loopback",
}

// PlanHostname decides, from what the collect script read, how the reset
// puts /etc/hostname and /etc/hosts back and which names it looks for.
func PlanHostname(got *Collected) *HostnamePlan {
	p := &HostnamePlan{}
	var found []string // candidates, in order, lowercase
	add := func(n string) {
		n = strings.ToLower(strings.TrimSpace(n))
		if n != "" && !slices.Contains(found, n) {
			found = append(found, n)
		}
	}
	if b, ok := got.File(setHostnamePath); ok {
		var rec struct {
			Hostname string `json:"hostname"`
			FQDN     string `json:"fqdn"`
		}
		if err := json.Unmarshal(b, &rec); err != nil {
			p.Messages = append(p.Messages, fmt.Sprintf("hostname: cannot read %s (%v); using the kernel's hostname", setHostnamePath, err))
		} else {
			add(rec.Hostname)
			add(rec.FQDN)
		}
	}
	add(got.KernelHostname)

	// The source image's own names, from the saved copy.
	var source []string
	for _, f := range cidata.SavedEtcFiles {
		if b, ok := got.File(path.Join(cidata.SavedEtcDir, f)); ok {
			source = append(source, etcNames(f, b)...)
		}
	}
	distro := strings.ToLower(got.Facts.OSRelease["ID"])
	for _, n := range found {
		switch {
		case n == "(none)":
		case !hostnameRE.MatchString(n):
			p.Skipped = append(p.Skipped, fmt.Sprintf("%q (not a host name)", n))
		case slices.Contains(loopbackNames, n):
			p.Skipped = append(p.Skipped, n+" (a loopback name)")
		case slices.Contains(source, n):
			p.Skipped = append(p.Skipped, n+" (the source image's own /etc/hostname or /etc/hosts names it)")
		case n == distro:
			p.Skipped = append(p.Skipped, n+" (the distribution's default hostname, os-release ID)")
		default:
			p.Names = append(p.Names, n)
		}
	}

	p.Restore = RestoreFallback
	var fromSaved, fallback []string
	for _, f := range cidata.SavedEtcFiles {
		etc := "/etc/" + f
		saved := path.Join(cidata.SavedEtcDir, f)
		if _, ok := got.File(saved); ok {
			p.Restore = RestoreSavedCopy
			fromSaved = append(fromSaved, etc)
			p.Files = append(p.Files, etcRestore{Path: etc, Action: etcFromSaved, Saved: saved, OldSHA: got.SHA256[saved], NewSHA: got.SHA256[saved]})
			continue
		}
		if _, ok := got.File(saved + ".absent"); ok {
			p.Restore = RestoreSavedCopy
			fromSaved = append(fromSaved, etc+" (removed: the source image had none)")
			// Removed if it exists then (the script checks).
			p.Files = append(p.Files, etcRestore{Path: etc, Action: etcAbsent})
			continue
		}
		// The fallback. (The collect script reads the file only when there
		// is no copy at all; a copy that lacks one of the two files cannot
		// happen, since the seed renames a complete directory into place.)
		old, exists := got.File(etc)
		if !exists {
			continue
		}
		switch f {
		case "hostname":
			first, _, _ := strings.Cut(string(old), "\n")
			if isBuildName(strings.TrimSpace(first), p.Names) {
				p.Files = append(p.Files, etcRestore{Path: etc, Action: etcEmpty, OldSHA: got.SHA256[etc], NewSHA: sha256Hex(nil), Old: old})
				fallback = append(fallback, etc+" emptied")
			}
		case "hosts":
			if n, changed := hostsWithout(old, p.Names); changed {
				p.Files = append(p.Files, etcRestore{Path: etc, Action: etcRewrite, Upload: "etc.hosts", OldSHA: got.SHA256[etc], NewSHA: sha256Hex(n), Old: old, Content: n})
				fallback = append(fallback, "the build's names taken out of "+etc)
			}
		}
	}

	names := strings.Join(p.Names, ", ")
	switch {
	case len(fromSaved) > 0:
		p.Summary = "restored from the source image's copy: " + strings.Join(fromSaved, ", ")
		p.Messages = append(p.Messages, fmt.Sprintf("hostname: putting back the source image's %s from the copy the seed saved on the first boot (%s)", strings.Join(fromSaved, " and "), cidata.SavedEtcDir))
	case len(fallback) > 0:
		p.Summary = "no saved copy of the source's files: " + strings.Join(fallback, ", ")
		p.Messages = append(p.Messages, fmt.Sprintf("hostname: no copy of the source image's /etc/hostname and /etc/hosts (%s; cloudimg-kvm's seed makes one): %s", cidata.SavedEtcDir, strings.Join(fallback, "; ")))
	default:
		p.Summary = "no saved copy of the source's files, and neither names the build host"
		p.Messages = append(p.Messages, fmt.Sprintf("hostname: no copy of the source image's /etc/hostname and /etc/hosts (%s); neither names the build host, both are kept", cidata.SavedEtcDir))
	}
	if names != "" {
		p.Messages = append(p.Messages, "hostname: the build's host names, looked for under /etc after the reset: "+names)
	}
	if len(p.Skipped) > 0 {
		p.Messages = append(p.Messages, "hostname: not looked for: "+strings.Join(p.Skipped, "; "))
	}
	return p
}

// etcNames returns the lowercase host names in /etc/hostname contents (its
// first line) or in /etc/hosts contents (every name after an address).
func etcNames(file string, b []byte) []string {
	if file == "hostname" {
		first, _, _ := strings.Cut(string(b), "\n")
		if n := strings.ToLower(strings.TrimSpace(first)); n != "" {
			return []string{n}
		}
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		for _, n := range f[min(1, len(f)):] {
			out = append(out, strings.ToLower(n))
		}
	}
	return out
}

// isBuildName reports whether n (any case) is one of names, or a dotted
// name whose first label is one (the build's fqdn when cloud-init's record
// of it is missing).
func isBuildName(n string, names []string) bool {
	n = strings.ToLower(n)
	first, _, _ := strings.Cut(n, ".")
	return n != "" && (slices.Contains(names, n) || slices.Contains(names, first))
}

// hostsWithout returns /etc/hosts contents without the build's names (see
// isBuildName): they are taken out of each line's names, and a line left
// with no name is dropped. Other lines, comments included, stay as they
// are. changed reports whether anything was taken out.
func hostsWithout(b []byte, names []string) (out []byte, changed bool) {
	if len(names) == 0 {
		return b, false
	}
	var buf bytes.Buffer
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		body, nl := bytes.CutSuffix(line, []byte("\n"))
		text, comment, hasComment := strings.Cut(string(body), "#")
		f := strings.Fields(text)
		if len(f) < 2 {
			buf.Write(line)
			continue
		}
		kept := f[:1]
		for _, n := range f[1:] {
			if !isBuildName(n, names) {
				kept = append(kept, n)
			}
		}
		if len(kept) == len(f) {
			buf.Write(line)
			continue
		}
		changed = true
		if len(kept) == 1 {
			continue
		}
		buf.WriteString(kept[0] + "\t" + strings.Join(kept[1:], " "))
		if hasComment {
			buf.WriteString(" #" + comment)
		}
		if nl {
			buf.WriteByte('\n')
		}
	}
	return buf.Bytes(), changed
}
