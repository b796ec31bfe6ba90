package cloudinitreset

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/accounts"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/imagemeta"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/version"
)

// run is one Provision call.
type run struct {
	cfg  *Config
	ui   packersdk.Ui
	comm packersdk.Communicator
	data map[string]interface{}
}

func (r *run) provision(ctx context.Context) error {
	cfg := r.cfg
	user := cfg.User
	if user == "" {
		user, _ = r.data["User"].(string)
		if user == "" {
			return errors.New("cloudimg-cloudinit-reset: set user: the builder published no User build variable")
		}
		if err := checkUser(user); err != nil {
			return fmt.Errorf("cloudimg-cloudinit-reset: the build user: %v", err)
		}
	}
	factsPath := cfg.FactsFile
	if factsPath == "" {
		if s, ok := r.data["FactsFile"].(string); ok && s != "" && !strings.HasPrefix(s, "ERR_") {
			factsPath = s
		}
	}
	nonce, err := newNonce()
	if err != nil {
		return err
	}
	if cfg.DryRun {
		r.ui.Say(fmt.Sprintf("Reset of the build user %s and of cloud-init: DRY RUN, nothing will change", user))
	} else {
		r.ui.Say(fmt.Sprintf("Resetting the image: removing the build user %s, cloud-init state and host-specific files", user))
	}

	dir, err := r.makeTempDir(ctx)
	if err != nil {
		return err
	}
	applied := false
	defer func() {
		if !applied { // the apply script removes the directory itself
			r.runPlain(ctx, "rm -rf "+shellQuote(dir))
		}
	}()

	// 1. Read.
	got, err := r.collect(ctx, dir, nonce)
	if err != nil {
		return err
	}
	for _, n := range got.Notes {
		r.ui.Say(n)
	}

	// 2. Plan.
	plan, err := accounts.RemoveUser(got.Files, user)
	if err != nil {
		return fmt.Errorf("cloudimg-cloudinit-reset: %v", err)
	}
	if plan.Present && plan.Home != "" && (dir == plan.Home || strings.HasPrefix(dir, strings.TrimSuffix(plan.Home, "/")+"/")) {
		return fmt.Errorf("cloudimg-cloudinit-reset: remote_folder %s is inside the home %s of %s, which the reset removes; choose another remote_folder", cfg.RemoteFolder, plan.Home, user)
	}
	host := PlanHostname(got)
	opts := cfg.applyOptions(nonce)
	opts.NICMACs = got.MACs
	if opts.Identity, err = r.identity(time.Now()); err != nil {
		return fmt.Errorf("cloudimg-cloudinit-reset: %v", err)
	}
	bundle, err := BuildApply(plan, host, got.SHA256, opts)
	if err != nil {
		return fmt.Errorf("cloudimg-cloudinit-reset: %v", err)
	}
	messages := append(append(append([]string{}, plan.Messages...), bundle.Messages...), host.Messages...)
	for _, m := range messages {
		r.ui.Say(m)
	}
	r.showDiffs(got, plan, host)

	// 3. Apply, in one upload and one privileged command.
	script := path.Join(dir, "apply.sh")
	if err := r.comm.Upload(script, strings.NewReader(bundle.Script), nil); err != nil {
		return fmt.Errorf("cloudimg-cloudinit-reset: uploading the apply script: %w", err)
	}
	command, err := renderExecuteCommand(cfg.ExecuteCommand, &cfg.ctx, script, r.data)
	if err != nil {
		return fmt.Errorf("cloudimg-cloudinit-reset: execute_command: %v", err)
	}
	applied = true
	var out bytes.Buffer
	cmd := &packersdk.RemoteCmd{Command: command, Stdout: &out}
	runErr := cmd.RunWithUi(ctx, r.comm, r.ui)
	status := -1
	if runErr == nil {
		status = cmd.ExitStatus()
	}
	res := ParseApply(out.Bytes(), nonce)

	// 4. Report.
	report := &Report{
		User:         user,
		RemovedGroup: plan.RemovedGroup,
		RemovedPaths: emptyIfNil(res.Removed),
		Messages:     emptyIfNil(append(messages, res.Notes...)),
		Checks:       res.Checks,
		DryRun:       cfg.DryRun,
		Hostname:     host.Report(),
	}
	if report.Checks == nil {
		report.Checks = []Check{}
	}
	report.ChangedFiles = changedFiles(bundle.Changed, res, cfg.DryRun)
	facts := got.Facts
	facts.Reset = report
	if factsPath != "" {
		if err := WriteFacts(factsPath, &facts); err != nil {
			return fmt.Errorf("cloudimg-cloudinit-reset: %w", err)
		}
		log.Printf("cloudimg-cloudinit-reset: wrote the guest facts to %s", factsPath)
	} else {
		r.ui.Say("No facts file: the builder published no FactsFile and facts_file is unset; the guest facts are not saved")
	}
	return r.verdict(runErr, status, res)
}

// verdict turns the apply script's outcome into the provisioner's error.
func (r *run) verdict(runErr error, status int, res *ApplyResult) error {
	const p = "cloudimg-cloudinit-reset"
	switch {
	case res.Abort != "":
		return fmt.Errorf("%s: aborted before changing anything: %s", p, res.Abort)
	case res.Done && !res.OK, len(res.Failed()) > 0:
		var names []string
		for _, c := range res.Failed() {
			names = append(names, fmt.Sprintf("%s (%s)", c.Name, c.Detail))
		}
		return fmt.Errorf("%s: the reset was applied but these checks failed: %s", p, strings.Join(names, "; "))
	case res.Done && res.OK:
		if runErr != nil || (status != 0 && status != packersdk.CmdDisconnect) {
			// The report is complete and good; only the session's end was rough.
			r.ui.Say(fmt.Sprintf("The session ended with status %d (%v) after a complete, passing report", status, runErr))
		}
		if status == packersdk.CmdDisconnect {
			r.ui.Say("The SSH session ended after the report; every check had passed")
		}
		if r.cfg.DryRun {
			r.ui.Say("Dry run: nothing was changed; the build user is still in the image")
		} else {
			r.ui.Say("Reset complete: every check passed")
		}
		return nil
	case res.Error != "":
		return fmt.Errorf("%s: %s; the guest may be partly reset", p, res.Error)
	case runErr != nil:
		return fmt.Errorf("%s: running the apply script: %w (no complete report; the guest may be partly reset)", p, runErr)
	case status == packersdk.CmdDisconnect:
		return fmt.Errorf("%s: the SSH session ended before the report was complete; the guest may be partly reset", p)
	default:
		return fmt.Errorf("%s: the apply script exited with status %d without a complete report (does execute_command run it as root?)", p, status)
	}
}

// makeTempDir makes the private temporary directory, as the build user.
func (r *run) makeTempDir(ctx context.Context) (string, error) {
	var out, errOut bytes.Buffer
	cmd := &packersdk.RemoteCmd{
		Command: "mktemp -d " + shellQuote(strings.TrimSuffix(r.cfg.RemoteFolder, "/")+"/cloudimg-reset.XXXXXXXXXX"),
		Stdout:  &out,
		Stderr:  &errOut,
	}
	if err := r.comm.Start(ctx, cmd); err != nil {
		return "", fmt.Errorf("cloudimg-cloudinit-reset: making a temporary directory: %w", err)
	}
	if st := cmd.Wait(); st != 0 {
		return "", fmt.Errorf("cloudimg-cloudinit-reset: mktemp -d in remote_folder %s failed (status %d): %s", r.cfg.RemoteFolder, st, strings.TrimSpace(errOut.String()))
	}
	dir := strings.TrimSpace(strings.TrimRight(out.String(), "\r\n"))
	if i := strings.LastIndexByte(dir, '\n'); i >= 0 { // a pty may add noise before
		dir = strings.TrimSpace(dir[i+1:])
	}
	if !path.IsAbs(dir) || strings.ContainsAny(dir, "'\"\\ \t") {
		return "", fmt.Errorf("cloudimg-cloudinit-reset: mktemp -d printed %q, not a plain absolute path", dir)
	}
	return dir, nil
}

// collect uploads and runs the collect script with execute_command.
func (r *run) collect(ctx context.Context, dir, nonce string) (*Collected, error) {
	script := path.Join(dir, "collect.sh")
	text, err := CollectScript(nonce)
	if err != nil {
		return nil, fmt.Errorf("cloudimg-cloudinit-reset: %v", err)
	}
	if err := r.comm.Upload(script, strings.NewReader(text), nil); err != nil {
		return nil, fmt.Errorf("cloudimg-cloudinit-reset: uploading the collect script: %w", err)
	}
	command, err := renderExecuteCommand(r.cfg.ExecuteCommand, &r.cfg.ctx, script, r.data)
	if err != nil {
		return nil, fmt.Errorf("cloudimg-cloudinit-reset: execute_command: %v", err)
	}
	var out, errOut bytes.Buffer
	cmd := &packersdk.RemoteCmd{Command: command, Stdout: &out, Stderr: &errOut}
	if err := r.comm.Start(ctx, cmd); err != nil {
		return nil, fmt.Errorf("cloudimg-cloudinit-reset: reading the account files: %w", err)
	}
	st := cmd.Wait()
	got, err := ParseCollect(out.Bytes(), nonce)
	if err != nil {
		detail := strings.TrimSpace(errOut.String())
		if detail == "" {
			detail = lastLines(out.String(), 5)
		}
		return nil, fmt.Errorf("cloudimg-cloudinit-reset: reading the account files with %q (exit status %d): %v: %s", command, st, err, detail)
	}
	return got, nil
}

// runPlain runs a command as the build user, ignoring the outcome.
func (r *run) runPlain(ctx context.Context, command string) {
	cmd := &packersdk.RemoteCmd{Command: command}
	if err := r.comm.Start(ctx, cmd); err != nil {
		log.Printf("cloudimg-cloudinit-reset: %s: %v", command, err)
		return
	}
	cmd.Wait()
}

// showDiffs prints the diff of every file the plan changes, with password
// hashes masked. In a dry run that is the point; otherwise it documents
// the change in the build log.
func (r *run) showDiffs(got *Collected, plan *accounts.Plan, host *HostnamePlan) {
	var sb strings.Builder
	olds := map[string][]byte{
		"passwd": got.Files.Passwd, "shadow": got.Files.Shadow, "group": got.Files.Group,
		"gshadow": got.Files.Gshadow, "subuid": got.Files.Subuid, "subgid": got.Files.Subgid,
	}
	for _, name := range plan.Changed {
		n, _ := plan.File(name)
		sb.WriteString(accounts.Diff("/etc/"+name, maskSecrets(name, olds[name]), maskSecrets(name, n)))
	}
	for _, name := range sortedKeys(plan.SudoersWrite) {
		sb.WriteString(accounts.Diff("/etc/sudoers.d/"+name, got.Files.Sudoers[name], plan.SudoersWrite[name]))
	}
	for _, name := range plan.SudoersRemove {
		sb.WriteString(accounts.Diff("/etc/sudoers.d/"+name, got.Files.Sudoers[name], nil))
	}
	for _, f := range host.Files {
		// The fallback's changes; the copy's contents replace the files
		// whole (the collect script does not read what they replace).
		switch f.Action {
		case etcEmpty:
			sb.WriteString(accounts.Diff(f.Path, f.Old, []byte{}))
		case etcRewrite:
			sb.WriteString(accounts.Diff(f.Path, f.Old, f.Content))
		}
	}
	if sb.Len() == 0 {
		return
	}
	if r.cfg.DryRun {
		r.ui.Say("Would change:")
	} else {
		r.ui.Say("Changes:")
	}
	for _, l := range strings.Split(strings.TrimSuffix(sb.String(), "\n"), "\n") {
		r.ui.Say(l)
	}
}

// applyOptions maps the configuration onto the apply script's options.
func (c *Config) applyOptions(nonce string) ApplyOptions {
	return ApplyOptions{
		Nonce:              nonce,
		DryRun:             c.DryRun,
		KeepPasswdBackups:  c.KeepPasswdBackups,
		MachineID:          c.MachineID,
		RemoveCloudSeed:    c.RemoveCloudSeed,
		RemoveSSHHostKeys:  enabled(c.RemoveSSHHostKeys),
		RemoveRandomSeed:   enabled(c.RemoveRandomSeed),
		RemoveDHCPLeases:   enabled(c.RemoveDHCPLeases),
		CleanTmp:           enabled(c.CleanTmp),
		RemoveShellHistory: enabled(c.RemoveShellHistory),
		CleanApt:           c.CleanApt,
		CleanJournal:       c.CleanJournal,
		ExtraPaths:         c.ExtraPaths,
		ShutdownAfter:      c.ShutdownAfter,
		ShutdownDelay:      c.ShutdownDelay,
	}
}

// identity is the image's identity document (imagemeta.Identity): the
// Packer run's UUID from the PACKER_RUN_UUID environment variable (Packer
// sets it for every plugin process of a run), the source name and builder
// type Packer passes in the configuration, the source image the builder
// published as build variables (SourceImageURL, SourceImageChecksum) and
// the labels option.
func (r *run) identity(now time.Time) ([]byte, error) {
	id := imagemeta.Identity{
		BuildID:       os.Getenv("PACKER_RUN_UUID"),
		SourceName:    r.cfg.PackerBuildName,
		BuilderType:   r.cfg.PackerBuilderType,
		ResetAt:       now,
		PluginVersion: version.PluginVersion.FormattedVersion(),
		Labels:        r.cfg.Labels,
	}
	if id.SourceName == "" { // not run by Packer, which always names the build
		r.ui.Say("No image identity file: Packer gave no build name (packer_build_name)")
		return nil, nil
	}
	if u := buildVar(r.data, "SourceImageURL"); u != "" {
		id.SourceImage = &imagemeta.IdentitySource{URL: u, Checksum: buildVar(r.data, "SourceImageChecksum")}
	}
	return imagemeta.MarshalIdentity(&id)
}

// buildVar is a string build variable, or "" when the builder did not
// publish it (Packer then passes "ERR_…" placeholders).
func buildVar(data map[string]interface{}, name string) string {
	s, _ := data[name].(string)
	if strings.HasPrefix(s, "ERR_") {
		return ""
	}
	return s
}

// changedFiles lists the account files and sudoers drop-ins that the
// apply script rewrote or deleted (in a dry run: would have), in the order
// of planned.
func changedFiles(planned []string, res *ApplyResult, dryRun bool) []string {
	out := []string{}
	for _, p := range planned {
		if dryRun || slices.Contains(res.Changed, p) || slices.Contains(res.Removed, p) {
			out = append(out, p)
		}
	}
	return out
}

func newNonce() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("cloudimg-cloudinit-reset: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
