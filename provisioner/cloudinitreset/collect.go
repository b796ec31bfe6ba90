package cloudinitreset

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/accounts"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/artifactstate"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/cidata"
)

// The collect script runs as root before anything changes. It only reads:
// the account files, /etc/login.defs, /etc/sudoers.d/*, os-release, what the
// hostname reset needs (cloud-init's set-hostname record, the kernel's
// hostname, and the seed's copy of the source image's /etc/hostname and
// /etc/hosts, or else those two files themselves), the MAC addresses of
// the build VM's NICs (which the network check looks for), and the facts
// (kernel, cloud-init version, installed packages). It prints them in a line
// protocol that parseCollect reads:
//
//	BEGIN <nonce>
//	FILE <sha256> <path>     then the contents in base64, then END
//	NOFILE <path>
//	FACT kernel <release>
//	FACT hostname <the kernel's hostname>
//	FACT mac <MAC address of one of the build VM's NICs>
//	FACT cloud-init <version output>
//	FACT package-manager dpkg|rpm
//	PKG<TAB><status><TAB><name><TAB><version>[<TAB><arch>[<TAB><source><TAB><source version>]]
//	NOTE <text>
//	DONE <nonce>
//
// Lines before BEGIN (a sudo lecture, a pty's noise) are ignored, and each
// file's sha256 is checked after decoding, so a corrupted transfer is
// caught. ROOT (environment) reads below that directory instead of /.
//
// The collect script is the library (reset.sh) with a plan of its collect
// records (see CollectPlan).
//
// CollectPlan returns the collect plan for nonce (letters and digits): the
// account files, login.defs and cloud-init's set-hostname record; the
// seed's copy of the source image's /etc/hostname and /etc/hosts
// (cidata.SavedEtcDir), or without one the files themselves; os-release;
// the drop-ins of /etc/sudoers.d; then the facts. The error is a nonce
// that is not 1 to 64 letters or digits.
func CollectPlan(nonce string) (string, error) {
	if !nonceRE.MatchString(nonce) {
		return "", errors.New("collect: the nonce must be 1 to 64 letters or digits")
	}
	w := &planWriter{}
	w.comment("cloudimg-cloudinit-reset: read the account files and the guest facts (read-only)")
	w.words("collect", nonce)
	for _, p := range []string{"/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow", "/etc/subuid", "/etc/subgid", "/etc/login.defs", setHostnamePath} {
		w.words("read-file", p)
	}
	w.words("read-saved", append([]string{cidata.SavedEtcDir}, cidata.SavedEtcFiles...)...)
	w.words("read-first", "/etc/os-release", "/usr/lib/os-release")
	w.words("read-dir", "/etc/sudoers.d")
	w.words("send-files")
	for _, f := range []string{"fact-kernel", "fact-hostname", "fact-macs", "fact-packages"} {
		w.words(f)
	}
	w.words("done")
	w.words("end")
	return w.String()
}

// CollectScript returns the collect script for nonce: Script(CollectPlan(nonce)).
func CollectScript(nonce string) (string, error) {
	plan, err := CollectPlan(nonce)
	if err != nil {
		return "", err
	}
	return Script(plan), nil
}

// Collected is what the collect script read from the guest.
type Collected struct {
	Files  accounts.Files    // account files, login.defs and sudoers drop-ins
	SHA256 map[string]string // guest path -> sha256 of the contents read
	Facts  Facts             // without Reset
	Notes  []string
	// KernelHostname is the guest's hostname when the collect script ran
	// ("" when unknown).
	KernelHostname string
	// MACs are the MAC addresses of the build VM's NICs (interfaces backed
	// by a device), lowercase, each once, in the order read; Ethernet
	// addresses only, without the all-zero one.
	MACs     []string
	contents map[string][]byte
}

// Exists reports whether the collect script found the guest file path.
func (c *Collected) Exists(path string) bool {
	_, ok := c.contents[path]
	return ok
}

// File returns the contents of the guest file path as read, and whether
// the collect script found it.
func (c *Collected) File(path string) ([]byte, bool) {
	b, ok := c.contents[path]
	return b, ok
}

// ParseCollect parses the collect script's output.
func ParseCollect(out []byte, nonce string) (*Collected, error) {
	contents := map[string][]byte{}
	c := &Collected{
		SHA256:   map[string]string{},
		contents: contents,
		Facts:    Facts{Facts: artifactstate.Facts{OSRelease: map[string]string{}, Packages: []Package{}}},
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	begun, done := false, false
	var cur string // path of the FILE block being read
	var curSHA string
	var b64 strings.Builder
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if !begun {
			if line == "BEGIN "+nonce {
				begun = true
			}
			continue
		}
		if cur != "" {
			if line != "END" {
				b64.WriteString(strings.TrimSpace(line))
				continue
			}
			data, err := base64.StdEncoding.DecodeString(b64.String())
			if err != nil {
				return nil, fmt.Errorf("reading %s from the guest: bad base64: %v", cur, err)
			}
			sum := sha256.Sum256(data)
			if hex.EncodeToString(sum[:]) != curSHA {
				return nil, fmt.Errorf("reading %s from the guest: the contents do not match their sha256 (corrupted transfer?)", cur)
			}
			if data == nil {
				data = []byte{}
			}
			contents[cur], c.SHA256[cur] = data, curSHA
			cur = ""
			b64.Reset()
			continue
		}
		word, rest, _ := strings.Cut(line, " ")
		switch {
		case word == "FILE":
			sha, p, ok := strings.Cut(rest, " ")
			if !ok || len(sha) != 64 || !strings.HasPrefix(p, "/") {
				return nil, fmt.Errorf("collect output: bad line %q", line)
			}
			cur, curSHA = p, sha
		case word == "NOFILE":
		case word == "FACT":
			k, v, _ := strings.Cut(rest, " ")
			switch k {
			case "kernel":
				c.Facts.Kernel = strings.TrimSpace(v)
			case "hostname":
				c.KernelHostname = strings.TrimSpace(v)
			case "mac":
				if m := strings.ToLower(strings.TrimSpace(v)); macRE.MatchString(m) && m != "00:00:00:00:00:00" && !slices.Contains(c.MACs, m) {
					c.MACs = append(c.MACs, m)
				}
			case "cloud-init":
				c.Facts.CloudInitVersion = cloudInitVersion(v)
			case "package-manager":
				c.Facts.PackageManager = strings.TrimSpace(v)
			}
		case strings.HasPrefix(line, "PKG\t"):
			if p, ok := parsePackage(line); ok {
				c.Facts.Packages = append(c.Facts.Packages, p)
			}
		case word == "NOTE":
			c.Notes = append(c.Notes, rest)
		case line == "DONE "+nonce:
			done = true
		}
		if done {
			break
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("collect output: %v", err)
	}
	switch {
	case !begun:
		return nil, errors.New("the collect script printed no BEGIN marker (did it run?)")
	case !done:
		return nil, errors.New("the collect script's output is incomplete (no DONE marker)")
	}
	if !c.Exists("/etc/passwd") {
		return nil, fmt.Errorf("the guest has no readable /etc/passwd")
	}
	f := &c.Files
	f.Passwd, f.Shadow, f.Group = contents["/etc/passwd"], contents["/etc/shadow"], contents["/etc/group"]
	f.Gshadow, f.Subuid, f.Subgid = contents["/etc/gshadow"], contents["/etc/subuid"], contents["/etc/subgid"]
	f.LoginDefs = contents["/etc/login.defs"]
	for p, data := range contents {
		if name, ok := strings.CutPrefix(p, "/etc/sudoers.d/"); ok {
			if f.Sudoers == nil {
				f.Sudoers = map[string][]byte{}
			}
			f.Sudoers[name] = data
		}
	}
	osr := contents["/etc/os-release"]
	if osr == nil {
		osr = contents["/usr/lib/os-release"]
	}
	c.Facts.OSRelease = ParseOSRelease(osr)
	if c.Facts.CloudInitVersion == "" {
		for _, p := range c.Facts.Packages {
			if p.Name == "cloud-init" {
				c.Facts.CloudInitVersion = upstreamVersion(p.Version)
			}
		}
	}
	sort.Slice(c.Facts.Packages, func(i, j int) bool {
		a, b := c.Facts.Packages[i], c.Facts.Packages[j]
		return a.Name < b.Name || a.Name == b.Name && a.Version < b.Version
	})
	return c, nil
}

// parsePackage parses a PKG line: status, name and version, then (when
// collected) architecture, source package and source version. dpkg leaves
// the source fields equal to the binary package's when they are the same.
func parsePackage(line string) (Package, bool) {
	f := strings.Split(line, "\t")
	if len(f) < 4 || len(f) > 7 || f[2] == "" || !installed(f[1]) {
		return Package{}, false
	}
	f = append(f, "", "", "")[:7]
	return Package{Name: f[2], Version: f[3], Architecture: f[4], Source: f[5], SourceVersion: f[6]}, true
}

// macRE is an Ethernet MAC address as the kernel writes it (lowercase).
var macRE = regexp.MustCompile(`^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`)

// installed reports whether a dpkg ${Status} ("install ok installed") or
// the rpm placeholder "installed" means an installed package.
func installed(status string) bool {
	f := strings.Fields(status)
	return len(f) > 0 && f[len(f)-1] == "installed"
}

// cloudInitVersion extracts the version from `cloud-init --version`
// output ("/usr/bin/cloud-init 22.4.2", "cloud-init 24.1.3-0ubuntu3").
func cloudInitVersion(out string) string {
	f := strings.Fields(out)
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}

// upstreamVersion is the upstream part of a Debian package version
// ("22.4.2-1+deb12u1" -> "22.4.2", "1:9.2p1-2" -> "9.2p1"), which is what
// `cloud-init --version` prints on Debian.
func upstreamVersion(v string) string {
	if _, after, ok := strings.Cut(v, ":"); ok {
		v = after
	}
	if i := strings.LastIndex(v, "-"); i > 0 {
		v = v[:i]
	}
	return v
}

// ParseOSRelease parses os-release(5) contents: KEY=value lines, values
// optionally in double or single quotes with backslash escapes in double
// quotes. Comments, blank and malformed lines are skipped.
func ParseOSRelease(b []byte) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t\"'") {
			continue
		}
		m[k] = unquoteOSRelease(v)
	}
	return m
}

func unquoteOSRelease(v string) string {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return v[1 : len(v)-1]
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
		var sb strings.Builder
		for i := 0; i < len(v); i++ {
			if v[i] == '\\' && i+1 < len(v) {
				i++
			}
			sb.WriteByte(v[i])
		}
		return sb.String()
	}
	return v
}
