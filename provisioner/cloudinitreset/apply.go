package cloudinitreset

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/accounts"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/cidata"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/imagemeta"
)

// ApplyOptions are the settings of the reset besides the accounts plan.
type ApplyOptions struct {
	Nonce             string // marks the report's DONE line; letters and digits
	DryRun            bool
	KeepPasswdBackups bool
	MachineID         string // MachineIDEmpty or MachineIDUninitialized
	RemoveCloudSeed   bool

	RemoveSSHHostKeys  bool
	RemoveRandomSeed   bool
	RemoveDHCPLeases   bool
	CleanTmp           bool
	RemoveShellHistory bool
	CleanApt           bool
	CleanJournal       bool

	ExtraPaths    []string // validated by checkExtraPath
	ShutdownAfter bool
	ShutdownDelay time.Duration

	// Identity is the image's identity document (imagemeta.MarshalIdentity),
	// installed at imagemeta.IdentityPath; nil writes none.
	Identity []byte

	// NICMACs are the MAC addresses of the build VM's NICs
	// (Collected.MACs): the network check fails if a file under /etc or in
	// networkd's or NetworkManager's state under /var/lib still names one.
	NICMACs []string
}

// Bundle is what goes to the guest's temporary directory: the apply script,
// which is the library (reset.sh) and the reset's plan, whose data records
// carry the new contents of the files it installs; the library writes them
// there itself (one upload: each upload is a session and a process in the
// guest, which costs a fraction of a second under emulation).
type Bundle struct {
	Plan     string            // the reset's plan (see reset.sh, reset_record)
	Script   string            // Script(Plan): what is uploaded and run
	Files    map[string][]byte // name in the temporary directory -> contents (in Plan)
	Changed  []string          // guest paths that change (rewritten or deleted)
	Messages []string          // decisions made here, for the report
}

// Names of the account files, in the order of accounts.Plan.Changed.
var accountFiles = []string{"passwd", "shadow", "group", "gshadow", "subuid", "subgid"}

type fileChange struct {
	Path   string // guest path
	Upload string // name in the temporary directory ("" for a removal)
	OldSHA string
	NewSHA string
}

type applyData struct {
	ApplyOptions
	User          string
	UID           int    // -1 when the user is absent
	RemovedGID    int    // GID of the removed personal group; -1 if none
	Home          string // home to remove; "" for none
	KeptGroup     bool
	Accounts      []fileChange
	SudoersWrite  []fileChange
	SudoersRemove []fileChange
	ShutdownSecs  int
	Inline        []inlineFile

	// The hostname reset (see HostnamePlan); all empty without one.
	Hostname        bool
	HostNames       []string     // the build's names
	HostnameSummary string       // how the files were dealt with, for the check's detail
	EtcSavedDir     string       // cidata.SavedEtcDir
	EtcMove         []string     // names in EtcSavedDir to move back into /etc
	EtcRemove       []string     // /etc paths the source image did not have
	EtcEmpty        []string     // /etc paths to truncate
	EtcWrite        []fileChange // /etc paths to rewrite
	EtcExpect       []fileChange // files that must still be as read (Path, OldSHA)
	EtcVerify       []fileChange // the results (Path, NewSHA)

	// The identity file (ApplyOptions.Identity): its path, its name in the
	// temporary directory and its sha256; all empty without one.
	IdentityPath   string
	IdentityUpload string
	IdentitySHA    string

	// The search for what still names the build: its host names under
	// /etc, its NICs' MAC addresses there and in the network state.
	Search bool // there is something to look for
}

// inlineFile is a file the apply script writes into its directory.
type inlineFile struct {
	Name   string
	Base64 string
}

var nonceRE = regexp.MustCompile(`^[A-Za-z0-9]{1,64}$`)

// BuildApply generates the reset's plan for plan and, unless host is nil,
// for the hostname reset, and the apply script that carries it out (see
// Script). orig maps each guest path that was read to the sha256 of the
// contents read (see Collected.SHA256); the script refuses to change a
// file whose contents differ from that. It is a pure function: the errors
// are options, plans or paths the plan cannot carry (a nonce that is not
// 1 to 64 letters or digits, an unknown machine_id, a bad extra path, a
// missing sha256, an unexpected file name or hostname action, a newline in
// a path).
func BuildApply(plan *accounts.Plan, host *HostnamePlan, orig map[string]string, opts ApplyOptions) (*Bundle, error) {
	if !nonceRE.MatchString(opts.Nonce) {
		return nil, errors.New("apply: the nonce must be 1 to 64 letters or digits")
	}
	switch opts.MachineID {
	case MachineIDEmpty, MachineIDUninitialized:
	default:
		return nil, fmt.Errorf("apply: unknown machine_id %q", opts.MachineID)
	}
	for i, p := range opts.ExtraPaths {
		if err := checkExtraPath(p); err != nil {
			return nil, fmt.Errorf("apply: extra_paths[%d]: %v", i, err)
		}
	}
	b := &Bundle{Files: map[string][]byte{}}
	d := applyData{
		ApplyOptions: opts,
		User:         plan.User,
		UID:          plan.UID,
		RemovedGID:   -1,
		KeptGroup:    plan.KeptGroupReason != "",
		ShutdownSecs: int(opts.ShutdownDelay / time.Second),
	}
	if d.UID < 0 {
		d.UID = -1
	}
	if plan.RemovedGroup != "" {
		d.RemovedGID = plan.GID
	}
	if opts.ShutdownAfter && d.ShutdownSecs < 1 {
		return nil, errors.New("apply: shutdown_delay must be at least 1s")
	}

	home, why := removableHome(plan)
	d.Home = home
	if why != "" {
		b.Messages = append(b.Messages, why)
	}

	sha := func(p string) (string, error) {
		s, ok := orig[p]
		if !ok {
			return "", fmt.Errorf("apply: no sha256 for %s, which the plan changes", p)
		}
		return s, nil
	}
	// dropIn is a sudoers drop-in's path and the sha256 it was read with.
	dropIn := func(name string) (string, string, error) {
		if !safeDropInName(name) {
			return "", "", fmt.Errorf("apply: unexpected sudoers drop-in name %q", name)
		}
		p := "/etc/sudoers.d/" + name
		old, err := sha(p)
		return p, old, err
	}
	for _, name := range plan.Changed {
		content, ok := plan.File(name)
		if !ok {
			return nil, fmt.Errorf("apply: unknown account file %q in the plan", name)
		}
		p := "/etc/" + name
		old, err := sha(p)
		if err != nil {
			return nil, err
		}
		d.Accounts = append(d.Accounts, fileChange{Path: p, Upload: name, OldSHA: old, NewSHA: sha256Hex(content)})
		b.Files[name] = content
		b.Changed = append(b.Changed, p)
	}
	names := make([]string, 0, len(plan.SudoersWrite))
	for name := range plan.SudoersWrite {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p, old, err := dropIn(name)
		if err != nil {
			return nil, err
		}
		up := "sudoers." + name
		content := plan.SudoersWrite[name]
		d.SudoersWrite = append(d.SudoersWrite, fileChange{Path: p, Upload: up, OldSHA: old, NewSHA: sha256Hex(content)})
		b.Files[up] = content
		b.Changed = append(b.Changed, p)
	}
	for _, name := range plan.SudoersRemove {
		p, old, err := dropIn(name)
		if err != nil {
			return nil, err
		}
		d.SudoersRemove = append(d.SudoersRemove, fileChange{Path: p, OldSHA: old})
		b.Changed = append(b.Changed, p)
	}

	if host != nil {
		if err := d.addHostname(host, b); err != nil {
			return nil, err
		}
	}
	if len(opts.Identity) > 0 {
		d.IdentityPath, d.IdentityUpload, d.IdentitySHA = imagemeta.IdentityPath, "image.json", sha256Hex(opts.Identity)
		b.Files[d.IdentityUpload] = opts.Identity
		b.Changed = append(b.Changed, d.IdentityPath)
	}
	for _, m := range opts.NICMACs {
		if !macRE.MatchString(m) {
			return nil, fmt.Errorf("apply: %q is not a MAC address", m)
		}
	}
	d.Search = len(d.HostNames) > 0 || len(opts.NICMACs) > 0

	for _, name := range sortedKeys(b.Files) {
		d.Inline = append(d.Inline, inlineFile{Name: name, Base64: base64.StdEncoding.EncodeToString(b.Files[name])})
	}
	p, err := d.plan()
	if err != nil {
		return nil, fmt.Errorf("apply: %v", err)
	}
	b.Plan, b.Script = p, Script(p)
	return b, nil
}

// addHostname fills the hostname reset's part of the script's data from
// host, and adds the files it writes to b.
func (d *applyData) addHostname(host *HostnamePlan, b *Bundle) error {
	for _, n := range host.Names {
		if !hostnameRE.MatchString(n) {
			return fmt.Errorf("apply: %q is not a host name", n)
		}
	}
	d.Hostname = true
	d.HostNames = host.Names
	d.HostnameSummary = host.Summary
	if len(host.Skipped) > 0 {
		d.HostnameSummary += "; not looked for: " + strings.Join(host.Skipped, "; ")
	}
	d.EtcSavedDir = cidata.SavedEtcDir
	for _, f := range host.Files {
		if f.Path != etcHostname && f.Path != etcHosts {
			return fmt.Errorf("apply: unexpected hostname file %s", f.Path)
		}
		switch f.Action {
		case etcFromSaved:
			if path.Dir(f.Saved) != cidata.SavedEtcDir || path.Base(f.Saved) != path.Base(f.Path) {
				return fmt.Errorf("apply: unexpected saved copy %s of %s", f.Saved, f.Path)
			}
			d.EtcMove = append(d.EtcMove, path.Base(f.Path))
			d.EtcExpect = append(d.EtcExpect, fileChange{Path: f.Saved, OldSHA: f.OldSHA})
			d.EtcVerify = append(d.EtcVerify, fileChange{Path: f.Path, NewSHA: f.NewSHA})
		case etcAbsent:
			d.EtcRemove = append(d.EtcRemove, f.Path)
		case etcEmpty:
			d.EtcEmpty = append(d.EtcEmpty, f.Path)
			d.EtcExpect = append(d.EtcExpect, fileChange{Path: f.Path, OldSHA: f.OldSHA})
			d.EtcVerify = append(d.EtcVerify, fileChange{Path: f.Path, NewSHA: f.NewSHA})
		case etcRewrite:
			d.EtcWrite = append(d.EtcWrite, fileChange{Path: f.Path, Upload: f.Upload, OldSHA: f.OldSHA, NewSHA: f.NewSHA})
			d.EtcVerify = append(d.EtcVerify, fileChange{Path: f.Path, NewSHA: f.NewSHA})
			b.Files[f.Upload] = f.Content
		default:
			return fmt.Errorf("apply: unknown action %q for %s", f.Action, f.Path)
		}
		b.Changed = append(b.Changed, f.Path)
	}
	return nil
}

// removableHome returns the home directory the script may remove (it also
// checks, on the guest, that the directory belongs to the user), or "" and
// the reason it will not.
func removableHome(plan *accounts.Plan) (home, why string) {
	if !plan.Present || plan.Home == "" {
		return "", ""
	}
	h := plan.Home
	switch {
	case !path.IsAbs(h):
		return "", fmt.Sprintf("kept the home %q of %s: not an absolute path", h, plan.User)
	case isVital(path.Clean(h)):
		return "", fmt.Sprintf("kept the home %s of %s: it is vital to the system", h, plan.User)
	}
	return path.Clean(h), ""
}

// safeDropInName reports names that sudo reads from /etc/sudoers.d and
// that need no care in a shell script.
func safeDropInName(name string) bool {
	return name != "" && !strings.HasPrefix(name, ".") && strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == ""
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// maskSecrets replaces the password field of shadow and gshadow lines with
// a placeholder when it holds a hash, so that diffs can go into build logs.
func maskSecrets(name string, b []byte) []byte {
	if b == nil || (name != "shadow" && name != "gshadow") {
		return b
	}
	lines := bytes.SplitAfter(b, []byte("\n"))
	var out bytes.Buffer
	for _, l := range lines {
		s := string(l)
		f := strings.SplitN(s, ":", 3)
		if len(f) == 3 && !strings.HasPrefix(s, "#") {
			pw := f[1]
			locked := strings.HasPrefix(pw, "!")
			if len(strings.TrimLeft(pw, "!*")) > 0 {
				pw = "<hash>"
				if locked {
					pw = "!<hash>"
				}
			}
			s = f[0] + ":" + pw + ":" + f[2]
		}
		out.WriteString(s)
	}
	return out.Bytes()
}
