// Package cidata makes the cloud-init NoCloud seed ("cidata") that the
// builder attaches to the VM: the content of its files (user-data, meta-data,
// network-config, vendor-data) and the ISO9660 image that carries them.
//
// It knows nothing of Packer, SSH connections or QEMU. The builder fills a
// [Config], calls [Build] and writes the result with [Seed.WriteISO].
//
// The generated user-data creates exactly one account, the build user, with
// passwordless sudo, a locked password and the builder's ephemeral SSH key,
// turns SSH password authentication off and creates no distribution default
// user (no "ubuntu"/"debian" account gets baked into the image). It sets the
// build's hostname through user-data, after a first bootcmd entry has saved
// the source image's /etc/hostname and /etc/hosts to [SavedEtcDir] for the
// reset provisioner. The user's own #cloud-config is merged into it; see
// [Build] for the rules.
package cidata

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"
)

// File names of a NoCloud seed. cloud-init looks for exactly these names
// (in the Rock Ridge or Joliet tree of the ISO).
const (
	FileUserData      = "user-data"
	FileMetaData      = "meta-data"
	FileNetworkConfig = "network-config"
	FileVendorData    = "vendor-data"
)

// SavedEtcDir is where the seed's first bootcmd entry keeps the source
// image's /etc/hostname and /etc/hosts (see [SavedEtcFiles]) as they were
// before cloud-init set the build's hostname, for the reset provisioner to
// put back. Each file is copied with cp -a (content, mode, owner,
// timestamps, SELinux label; a symbolic link stays a link); a file the image
// lacks is recorded as an empty "<name>.absent". The directory is complete
// or missing: it is filled under another name and renamed. It lies in
// cloud-init's state, which the reset removes anyway.
const SavedEtcDir = "/var/lib/cloud/cloudimg-source-etc"

// SavedEtcFiles are the files of /etc saved in [SavedEtcDir].
var SavedEtcFiles = []string{"hostname", "hosts"}

// saveEtcScript is the first bootcmd entry of the seed. cloud-init runs
// bootcmd on every boot (a provisioner may reboot the VM), so the copy is
// made only once. bootcmd runs in the init stage's modules before
// set_hostname, update_hostname and update_etc_hosts, and on a first boot
// nothing sets the hostname before it when meta-data has no local-hostname:
// cloud-init's early _maybe_set_hostname sees only meta-data and the
// instance's cloud-config, which consume_data writes later. So the copy is
// the source image's. It runs in a subshell: the user's bootcmd entries
// that follow see no variables of it.
const saveEtcScript = `# cloudimg: save the source image's /etc/hostname and /etc/hosts for the reset, once
if [ ! -d ` + SavedEtcDir + ` ]; then
  (
    set -e
    t=` + SavedEtcDir + `.tmp
    if [ -e "$t" ]; then rm -rf "$t"; fi
    mkdir -m 0700 "$t"
    set --
    for f in hostname hosts; do
      if [ -e "/etc/$f" ] || [ -L "/etc/$f" ]; then set -- "$@" "/etc/$f"; else : >"$t/$f.absent"; fi
    done
    if [ $# -gt 0 ]; then cp -a "$@" "$t/"; fi
    mv "$t" ` + SavedEtcDir + `
  )
fi
`

// VolumeLabel is the ISO volume label cloud-init's NoCloud datasource looks
// for (it accepts "cidata" and "CIDATA").
const VolumeLabel = "cidata"

// DefaultSSHGenKeyTypes are the SSH host key types cloud-init generates when
// neither [Config.SSHGenKeyTypes] nor the user's cloud-config says otherwise.
// Only ed25519: RSA and ECDSA key generation is slow under emulation, and the
// image reset deletes the host keys anyway.
var DefaultSSHGenKeyTypes = []string{"ed25519"}

// Config is what the seed is made from.
type Config struct {
	// InstanceID is cloud-init's instance-id; unique per build. Required.
	// cloud-init uses it as a directory name, so it is limited to
	// letters, digits and ". _ : -". See [NewInstanceID].
	InstanceID string
	// Hostname is the build VM's host name, set through user-data
	// (hostname: its first label, fqdn: all of it), not meta-data's
	// local-hostname. Optional (omitted when empty); when set it must be a
	// valid host name. A hostname or fqdn in UserData replaces both.
	Hostname string
	// Username is the build user, e.g. "packer". Required.
	Username string
	// AuthorizedKey is one OpenSSH authorized_keys line for the build user
	// (the builder's ephemeral key). Required.
	AuthorizedKey string

	// UserData is the user's own #cloud-config, merged into the generated
	// one. Nil, empty or whitespace-only means none.
	UserData []byte
	// UserDataName names where UserData came from, for error messages,
	// e.g. "user_data_file (seed/user-data.yaml)". Defaults to "user data".
	UserDataName string

	// NetworkConfig is the user's own network-config, written verbatim
	// after a sanity check. Nil (or whitespace-only) selects
	// [DefaultNetworkConfig] for MAC, or no network-config at all when MAC
	// is empty too (cloud-init then falls back to DHCP on the first NIC).
	NetworkConfig []byte
	// NetworkConfigName names where NetworkConfig came from, for error
	// messages. Defaults to "network config".
	NetworkConfigName string
	// MAC is the MAC address the builder gives the guest's NIC; used by the
	// default network-config.
	MAC string

	// VendorData is written verbatim as vendor-data when not nil.
	VendorData []byte
	// MetaData holds extra meta-data keys. They must not be instance-id or
	// local-hostname (use the fields above: a local-hostname would name the
	// build host in /etc before the bootcmd entry saves the source's files).
	MetaData map[string]string

	// SSHGenKeyTypes are the host key types cloud-init generates
	// (ssh_genkeytypes). Nil means [DefaultSSHGenKeyTypes]; it must not be
	// empty otherwise (sshd would have no host key). Allowed: rsa, ecdsa,
	// ed25519. A ssh_genkeytypes in UserData takes precedence.
	SSHGenKeyTypes []string
}

// Seed is the content of a NoCloud seed.
type Seed struct {
	UserData      []byte
	MetaData      []byte
	NetworkConfig []byte // nil: no network-config file
	VendorData    []byte // nil: no vendor-data file

	// Warnings are things the user should be told about but which do not
	// stop the build, e.g. that their users list asks for the distribution's
	// default user.
	Warnings []string
}

// Files returns the seed's files by name, leaving out those that are absent.
func (s *Seed) Files() map[string][]byte {
	m := map[string][]byte{
		FileUserData: s.UserData,
		FileMetaData: s.MetaData,
	}
	if s.NetworkConfig != nil {
		m[FileNetworkConfig] = s.NetworkConfig
	}
	if s.VendorData != nil {
		m[FileVendorData] = s.VendorData
	}
	return m
}

// NewInstanceID returns a fresh random instance id, "cloudimg-" followed by
// 16 hex digits.
func NewInstanceID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return "cloudimg-" + hex.EncodeToString(b)
}

// Build makes the seed content from c. Its output depends only on c: the
// same Config gives the same bytes.
//
// # user-data
//
// The generated #cloud-config has, in this order:
//
//	users:                     # no "default" entry
//	  - name: <Username>
//	    sudo: ALL=(ALL) NOPASSWD:ALL
//	    shell: /bin/bash
//	    lock_passwd: true
//	    ssh_authorized_keys: [<AuthorizedKey>]
//	ssh_pwauth: false
//	ssh_genkeytypes: [ed25519]  # or SSHGenKeyTypes
//	ssh:
//	  emit_keys_to_console: false
//	hostname: <first label of Hostname>  # when Hostname is set
//	fqdn: <Hostname>
//	bootcmd:
//	  - <save /etc/hostname and /etc/hosts to SavedEtcDir, once>
//
// The hostname is in user-data rather than in meta-data's local-hostname
// because cloud-init applies local-hostname at the very start of a first
// boot, before any module, whereas a user-data hostname is applied by the
// set_hostname module, after bootcmd: the bootcmd entry thus saves the
// source image's files before anything names the build host in them, and
// the reset provisioner puts them back. fqdn keeps what local-hostname
// gave: without it cloud-init would take the domain part from the source
// image's current hostname.
//
// The user's UserData, which must be a single YAML mapping headed
// "#cloud-config", is merged into it:
//
//   - Lists are concatenated, ours first (so the build user stays first in
//     users); maps are merged key by key, recursively; for other values, or
//     when the two kinds differ, the user's value wins. Keys only the user
//     has are appended in the user's order.
//   - users must be a list (a comma-separated string is accepted too). An
//     entry named like the build user is an error. A "default" entry is kept
//     (cloud-init then also creates the distribution's default user) and
//     reported in [Seed.Warnings].
//   - ssh_pwauth stays false: the user may repeat false (or no/off), any
//     other value is an error, because cloud-init writes it into the
//     image's sshd configuration.
//   - ssh_genkeytypes is replaced, not concatenated, by the user's list,
//     which must be a non-empty list of strings.
//   - power_state is an error: a cloud-init shutdown or reboot would cut
//     the build's SSH session; the builder shuts the VM down itself.
//   - A hostname or fqdn of the user's replaces both of ours, so that
//     cloud-init derives the other one from the user's as it would
//     without the builder.
//   - bootcmd must be a list; the user's entries run after ours.
//   - A null value for users, ssh_pwauth, ssh_genkeytypes, hostname, fqdn
//     or bootcmd is ignored.
//
// Before merging, aliases are expanded and "<<" merge keys resolved, so the
// output has no anchors; comments are dropped. Scalars keep their original
// text and style, so values like 0644 or yes read the same to cloud-init's
// YAML 1.1 parser as in the user's file.
//
// Shell scripts, #include, MIME multipart, jinja templates and other
// user-data formats are rejected: only #cloud-config can be merged (use
// write_files and runcmd instead).
//
// # meta-data
//
// instance-id, then the MetaData keys in sorted order. No local-hostname:
// the hostname is in user-data (see above).
//
// # network-config
//
// The user's NetworkConfig verbatim (it must be a YAML mapping with a
// network or version key), else [DefaultNetworkConfig] of MAC when MAC is
// set, else none.
func Build(c Config) (*Seed, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	s := &Seed{}
	var err error
	if s.MetaData, err = c.metaData(); err != nil {
		return nil, err
	}
	if s.UserData, s.Warnings, err = c.userData(); err != nil {
		return nil, err
	}
	switch {
	case len(bytes.TrimSpace(c.NetworkConfig)) > 0:
		if err := checkNetworkConfig(c.NetworkConfig); err != nil {
			return nil, fmt.Errorf("%s: %w", c.networkConfigName(), err)
		}
		s.NetworkConfig = bytes.Clone(c.NetworkConfig)
	case c.MAC != "":
		if s.NetworkConfig, err = DefaultNetworkConfig(c.MAC); err != nil {
			return nil, err
		}
	}
	if c.VendorData != nil {
		s.VendorData = bytes.Clone(c.VendorData)
	}
	return s, nil
}

var (
	// Debian's adduser default NAME_REGEX, without the trailing "$" allowed
	// for Samba machine accounts; useradd's limit of 32 characters.
	usernameRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	// Used as a directory name under /var/lib/cloud/instances.
	instanceIDRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	hostLabelRE  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	// Keys of extra meta-data: plain identifiers.
	metaKeyRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

var allowedKeyTypes = []string{"rsa", "ecdsa", "ed25519"}

func (c *Config) validate() error {
	var errs []error
	switch {
	case c.InstanceID == "":
		errs = append(errs, errors.New("instance id is required"))
	case !instanceIDRE.MatchString(c.InstanceID) || c.InstanceID == "." || c.InstanceID == "..":
		errs = append(errs, fmt.Errorf("instance id %q: use up to 128 letters, digits, '.', '_', ':' or '-'", c.InstanceID))
	}
	if c.Hostname != "" && !validHostname(c.Hostname) {
		errs = append(errs, fmt.Errorf("hostname %q is not a valid host name", c.Hostname))
	}
	switch {
	case c.Username == "":
		errs = append(errs, errors.New("build user name is required"))
	case c.Username == "root":
		errs = append(errs, errors.New("the build user cannot be root"))
	case !usernameRE.MatchString(c.Username):
		errs = append(errs, fmt.Errorf("build user name %q: use up to 32 lowercase letters, digits, '_' or '-', starting with a letter or '_'", c.Username))
	}
	if err := checkAuthorizedKey(c.AuthorizedKey); err != nil {
		errs = append(errs, err)
	}
	if c.MAC != "" {
		if _, err := normalizeMAC(c.MAC); err != nil {
			errs = append(errs, err)
		}
	}
	if c.SSHGenKeyTypes != nil {
		if len(c.SSHGenKeyTypes) == 0 {
			errs = append(errs, errors.New("ssh host key types: the list is empty; sshd needs at least one host key"))
		}
		for _, t := range c.SSHGenKeyTypes {
			if !slices.Contains(allowedKeyTypes, t) {
				errs = append(errs, fmt.Errorf("ssh host key type %q: use one of %s", t, strings.Join(allowedKeyTypes, ", ")))
			}
		}
	}
	for k := range c.MetaData {
		switch {
		case k == "instance-id":
			errs = append(errs, fmt.Errorf("extra meta-data key %q: the builder makes a new instance id for every build", k))
		case k == "local-hostname":
			errs = append(errs, fmt.Errorf("extra meta-data key %q: set the hostname instead (it goes into user-data, so that the reset can restore the source image's /etc/hostname and /etc/hosts)", k))
		case !metaKeyRE.MatchString(k):
			errs = append(errs, fmt.Errorf("extra meta-data key %q: use letters, digits, '.', '_' or '-'", k))
		}
	}
	return errors.Join(errs...)
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for l := range strings.SplitSeq(h, ".") {
		if !hostLabelRE.MatchString(l) {
			return false
		}
	}
	return true
}

func checkAuthorizedKey(key string) error {
	if strings.TrimSpace(key) == "" {
		return errors.New("authorized key is required")
	}
	if strings.ContainsAny(strings.TrimSpace(key), "\r\n") {
		return errors.New("authorized key must be a single line")
	}
	_, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(key))
	if err != nil {
		return fmt.Errorf("authorized key: %w", err)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return errors.New("authorized key must be a single line")
	}
	return nil
}

func normalizeMAC(mac string) (string, error) {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return "", fmt.Errorf("MAC address %q: want six colon-separated hex bytes, e.g. 52:54:00:12:34:56", mac)
	}
	return hw.String(), nil // lowercase, colon-separated
}

func (c *Config) userDataName() string {
	if c.UserDataName != "" {
		return c.UserDataName
	}
	return "user data"
}

func (c *Config) networkConfigName() string {
	if c.NetworkConfigName != "" {
		return c.NetworkConfigName
	}
	return "network config"
}

func (c *Config) metaData() ([]byte, error) {
	m := &yaml.Node{Kind: yaml.MappingNode}
	addPair(m, "instance-id", str(c.InstanceID))
	keys := make([]string, 0, len(c.MetaData))
	for k := range c.MetaData {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		addPair(m, k, str(c.MetaData[k]))
	}
	return encode(m)
}

// DefaultNetworkConfig returns a version 2 network-config that brings up the
// NIC with the given MAC address by DHCPv4. The NIC is matched by its
// (lowercased) MAC and keeps its kernel name (no set-name): the often-copied
// match on driver "virt*" leaves Debian guests, whose cloud-init renders
// ifupdown configuration, without network.
func DefaultNetworkConfig(mac string) ([]byte, error) {
	mac, err := normalizeMAC(mac)
	if err != nil {
		return nil, err
	}
	macNode := str(mac)
	// Quoted: 52:54:00:12:34:56 is a sexagesimal integer to YAML 1.1.
	macNode.Style = yaml.DoubleQuotedStyle
	match := &yaml.Node{Kind: yaml.MappingNode}
	addPair(match, "macaddress", macNode)
	nic := &yaml.Node{Kind: yaml.MappingNode}
	addPair(nic, "match", match)
	addPair(nic, "dhcp4", boolNode(true))
	eths := &yaml.Node{Kind: yaml.MappingNode}
	addPair(eths, "nic0", nic)
	root := &yaml.Node{Kind: yaml.MappingNode}
	addPair(root, "version", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: "2"})
	addPair(root, "ethernets", eths)
	return encode(root)
}

// checkNetworkConfig checks that b is a YAML mapping with a network key (the
// wrapped form) or a version key, the two forms cloud-init accepts.
func checkNetworkConfig(b []byte) error {
	var v any
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return syntaxError(b, err)
	}
	if err := doc.Decode(&v); err != nil {
		return fmt.Errorf("invalid YAML: %s", yamlErr(err))
	}
	m, ok := v.(map[string]any)
	if !ok {
		return errors.New("not a YAML mapping; want a network-config with a top-level version (or network) key")
	}
	if n, ok := m["network"]; ok {
		if _, ok := n.(map[string]any); !ok {
			return errors.New("network: want a mapping with version (or config: disabled)")
		}
		return nil
	}
	ver, ok := m["version"]
	if !ok {
		return errors.New("no top-level version (or network) key; want e.g. \"version: 2\" and ethernets")
	}
	if ver != 1 && ver != 2 {
		return fmt.Errorf("version: %v; cloud-init knows versions 1 and 2", ver)
	}
	return nil
}

// yamlErr strips yaml.v3's "yaml: " prefix; the rest of its semantic errors
// carries correct line numbers ("line 4: mapping key "a" already defined at
// line 2").
func yamlErr(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return strings.Join(te.Errors, "; ")
	}
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

var yamlLineRE = regexp.MustCompile(`^line \d+: `)

// syntaxError describes a YAML syntax error in data with the line where it
// is. yaml.v3 reports syntax errors at the line where the enclosing block
// starts, and zero-based at that ("line 1: did not find expected key" for a
// mistake on line 5), so the line is found here instead: it is the first
// line after the longest prefix of whole lines that still parses.
func syntaxError(data []byte, err error) error {
	msg := yamlLineRE.ReplaceAllString(yamlErr(err), "")
	if line := errorLine(data); line > 0 {
		return fmt.Errorf("invalid YAML at line %d: %s", line, msg)
	}
	return fmt.Errorf("invalid YAML: %s", msg)
}

func errorLine(data []byte) int {
	var ends []int // ends[i]: offset after line i+1
	for i, b := range data {
		if b == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		ends = append(ends, len(data))
	}
	prefixParses := func(lines int) bool {
		if lines == 0 {
			return true
		}
		return yamlParses(data[:ends[lines-1]])
	}
	if prefixParses(len(ends)) {
		return 0
	}
	if len(ends) > 1000 {
		// Binary search; exact when the prefixes that parse are exactly
		// those before the error, which is the usual case.
		lo, hi := 0, len(ends) // prefixParses(lo), !prefixParses(hi)
		for hi-lo > 1 {
			mid := (lo + hi) / 2
			if prefixParses(mid) {
				lo = mid
			} else {
				hi = mid
			}
		}
		return hi
	}
	// From the end, so that a construct that is merely unfinished at a
	// shorter prefix (a flow list over several lines) does not count.
	for k := len(ends) - 1; k > 0; k-- {
		if prefixParses(k) {
			return k + 1
		}
	}
	return 1
}

func yamlParses(b []byte) bool {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var n yaml.Node
		switch err := dec.Decode(&n); err {
		case nil:
		case io.EOF:
			return true
		default:
			return false
		}
	}
}

func str(s string) *yaml.Node {
	n := &yaml.Node{}
	// Encoding a Go string picks a quoting style that keeps it a string for
	// YAML 1.1 readers too (e.g. "yes", "0644").
	if err := n.Encode(s); err != nil {
		panic(err) // a string always encodes
	}
	return n
}

func boolNode(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: fmt.Sprint(b)}
}

func strSeq(ss []string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, s := range ss {
		n.Content = append(n.Content, str(s))
	}
	return n
}

func addPair(m *yaml.Node, key string, v *yaml.Node) {
	m.Content = append(m.Content, str(key), v)
}

func encode(n *yaml.Node) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
