//go:build e2e

package e2e

// The seed's deployment (issue #24): example/terraform, as shipped, run by
// OpenTofu (and by Terraform when one is on the PATH) with the libvirt
// provider installed from a local filesystem mirror (init -plugin-dir), on
// real libvirt (domain type qemu under TCG). The guests are reached as every
// harness guest is, over an SSH forward on 127.0.0.1: the test's XSLT (the
// module's domain_xslt) adds a QEMU user-mode NIC with restrict=on and a
// hostfwd, at an explicit PCI address, and sends the serial console to a
// file; no libvirt network, no bridge.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/imagemeta"
)

// tfNodeDiskGiB is each node's disk: larger than the test image's 2 GiB, so
// that growpart has something to grow.
const tfNodeDiskGiB = 4

// tfImage is one image of the terraform subtest's repository.
type tfImage struct {
	label  string // v1, v2
	rel    string // path in the repository
	sha256 string
	entry  imagemeta.IndexEntry
	meta   *imagemeta.Metadata
}

// tfRun is one runner's (tofu, terraform) loop over example/terraform.
type tfRun struct {
	t       *testing.T
	bin     string // the runner's binary
	dir     string // the root module's copy (state, logs)
	env     []string
	prefix  string // the module's var.name
	pool    string // libvirt pool name
	poolDir string
	logDir  string // serial logs (libvirt-qemu must reach it)
	signer  ssh.Signer
	keyPath string
	ports   map[string]int    // domain name -> SSH forward port
	macs    map[string]string // domain name -> MAC address
	applied int               // applies so far (log file names)
}

// testTerraform is TestScenarioBasic's terraform subtest: the basic image is
// v1 of the image name "basic" in a copy of the basic repository (the
// chained subtest that follows removes it from the original with
// keep_last); v2 is a variant built from it, first and alone, by the chained
// template with keep_last = 0 into a second copy. With each runner: apply
// (two nodes of the newest) → each node judged as a first boot → the newest
// changes → apply replaces the nodes, judged again → image_sha256 pinned to
// v1 → apply rolls back, judged → a pin the repository lacks stops the plan
// → destroy leaves no domain, volume or pool.
//
// It runs with OpenTofu in make test; CLOUDIMG_E2E_TERRAFORM=both adds the
// terraform on the PATH, =0 leaves the loop out.
func testTerraform(t *testing.T, tm *timings, base *basicBuild, cell string) {
	mode := os.Getenv("CLOUDIMG_E2E_TERRAFORM")
	switch mode {
	case "", "tofu", "both":
	case "0":
		t.Skip("CLOUDIMG_E2E_TERRAFORM=0: the Terraform loop is left out")
	default:
		t.Fatalf("CLOUDIMG_E2E_TERRAFORM=%q: want tofu (the default), both or 0", mode)
	}
	tofu := filepath.Join(suite.root, "tools", "bin", "tofu")
	provider := filepath.Join(suite.root, "tools", "bin", "terraform-provider-libvirt_v0.8.3")
	for _, p := range []string{tofu, provider} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s is missing: run make tools (%v)", p, err)
		}
	}
	for _, p := range []string{"xsltproc", "mkisofs"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s not found: the libvirt provider runs it; install it (make deps)", p)
		}
	}
	useLibvirt(t)
	dir := testDir(t)

	// The repository: a copy of the basic one (hard links: the
	// post-processor replaces index.json and SHA256SUMS by renaming, never
	// in place), v1 its only image.
	repo := filepath.Join(dir, "repository")
	if out, err := exec.Command("cp", "-al", base.repo, repo).CombinedOutput(); err != nil {
		t.Fatalf("cp -al %s %s: %v\n%s", base.repo, repo, err, out)
	}
	v1 := tfReadImage(t, repo, base.rel, "v1")
	if virt := qemuVirtualSize(t, filepath.Join(repo, v1.rel)); virt >= tfNodeDiskGiB<<30 {
		t.Fatalf("the image's virtual size %d is not below the nodes' %d GiB: growpart would have nothing to grow", virt, tfNodeDiskGiB)
	}

	// The provider in a local filesystem mirror, as Terraform and OpenTofu
	// look for it with -plugin-dir.
	plugins := filepath.Join(dir, "plugins")
	pdir := filepath.Join(plugins, "registry.terraform.io", "dmacvicar", "libvirt", "0.8.3", "linux_amd64")
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(provider, filepath.Join(pdir, "terraform-provider-libvirt_v0.8.3")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(pdir, "terraform-provider-libvirt_v0.8.3"), 0o755); err != nil {
		t.Fatal(err)
	}

	// OpenTofu (make tools builds it) always; Terraform too when asked
	// (CLOUDIMG_E2E_TERRAFORM=1) and on the PATH. Each runner's loop is
	// six first boots under TCG: running both in every make test would
	// double the subtest's time, beyond make test's budget.
	runners := [][2]string{{"tofu", tofu}}
	if mode == "both" {
		tf, err := exec.LookPath("terraform")
		if err != nil {
			t.Fatalf("CLOUDIMG_E2E_TERRAFORM=both but no terraform on the PATH: %v", err)
		}
		runners = append(runners, [2]string{"terraform", tf})
	} else {
		t.Logf("the loop runs with OpenTofu only (CLOUDIMG_E2E_TERRAFORM=both runs it with the terraform on the PATH too)")
	}
	// v2 is built first, alone (one VM), into a second view of the
	// repository (v1 and v2); the module reads the repository through a
	// symbolic link that first names the v1-only view, then, for the roll,
	// the v1+v2 view: to Terraform the newest image at the same path has
	// changed, as when Packer adds an image to a repository. At most two
	// nodes run at a time (and, for the seconds of a create-before-destroy
	// roll, the old idle pair beside the new one).
	v2view := filepath.Join(dir, "repository-v2")
	if out, err := exec.Command("cp", "-al", base.repo, v2view).CombinedOutput(); err != nil {
		t.Fatalf("cp -al %s %s: %v\n%s", base.repo, v2view, err, out)
	}
	cdir := copyScenario(t, "chained", testDir(t))
	imageID := "tf-v2-" + randHex(4)
	start := time.Now()
	buildPacker(t, cdir, buildArgs(map[string]string{
		"repository": v2view, "cell": cell, "image_id": imageID, "base_token": base.token,
		"variant_token": "e2e-" + randHex(16), "keep_last": "0",
	}, "variant.pkr.hcl")...).mustSucceed(t)
	tm.since("terraform: v2 build", start)
	v2 := tfReadImage(t, v2view, imageID+"/basic.qcow2", "v2")
	if v2.sha256 == v1.sha256 {
		t.Fatalf("v2 has v1's sha256 %s", v1.sha256)
	}
	link := filepath.Join(dir, "repository-now")
	point := func(view string) {
		t.Helper()
		tmp := link + ".new"
		_ = os.Remove(tmp)
		if err := os.Symlink(view, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, link); err != nil {
			t.Fatal(err)
		}
	}

	for _, r := range runners {
		t.Run(r[0], func(t *testing.T) {
			run := newTFRun(t, r[1], plugins)
			point(repo)
			run.prepare(v1, v2)
			start := time.Now()
			first := run.applyAndJudge("v1", link, "", v1, nil)
			tm.since(r[0]+": apply v1 and judge", start)

			point(v2view)
			start = time.Now()
			second := run.applyAndJudge("roll-to-v2", link, "", v2, first)
			tm.since(r[0]+": roll to v2 and judge", start)

			start = time.Now()
			run.applyAndJudge("rollback-to-v1", link, v1.sha256, v1, second)
			tm.since(r[0]+": roll back to v1 and judge", start)

			// A pin the repository does not hold: the plan stops, naming it.
			run.vars(link, strings.Repeat("0", 64))
			if out, err := run.run("plan", "-no-color", "-input=false"); err == nil || !strings.Contains(out, "No image named \"basic\"") || !strings.Contains(out, strings.Repeat("0", 64)) {
				t.Errorf("plan with an image_sha256 the repository lacks: %v, want the module's error naming the pin:\n%s", err, tailLines(out, 30))
			}

			run.vars(link, v1.sha256)

			start = time.Now()
			run.destroy()
			tm.since(r[0]+": destroy", start)
		})
	}
}

// tfReadImage reads the index entry and metadata of the image at rel.
func tfReadImage(t testing.TB, repo, rel, label string) *tfImage {
	t.Helper()
	idx, err := (&imagemeta.Repo{Dir: repo}).ReadIndex()
	if err != nil {
		t.Fatalf("repository %s: %v", repo, err)
	}
	for _, e := range idx.Images {
		if e.Path != rel {
			continue
		}
		m, err := imagemeta.ReadMetadata(filepath.Join(repo, rel+".metadata.json"))
		if err != nil {
			t.Fatal(err)
		}
		if e.BuildID == "" || e.BuildID != m.Build.PackerRunUUID || e.SourceName != m.Build.SourceName || e.SourceName == "" {
			t.Errorf("index.json: %s has build_id %q, source_name %q; its metadata build.packer_run_uuid %q, build.source_name %q (want equal, not empty)",
				rel, e.BuildID, e.SourceName, m.Build.PackerRunUUID, m.Build.SourceName)
		}
		return &tfImage{label: label, rel: rel, sha256: e.Checksums["sha256"], entry: e, meta: m}
	}
	t.Fatalf("index.json of %s does not list %s", repo, rel)
	return nil
}

// qemuVirtualSize is an image's virtual size in bytes.
func qemuVirtualSize(t testing.TB, path string) int64 {
	t.Helper()
	out, err := exec.Command("qemu-img", "info", "--output=json", "-U", path).Output()
	if err != nil {
		t.Fatalf("qemu-img info %s: %v", path, err)
	}
	var info struct {
		VirtualSize int64 `json:"virtual-size"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatal(err)
	}
	return info.VirtualSize
}

// newTFRun copies example/terraform into a directory of the test, makes the
// seed's key and runs init against the local mirror. Its cleanup destroys
// whatever the module still has (and, should that fail, removes the
// domains, volumes and pool by name).
func newTFRun(t *testing.T, bin, plugins string) *tfRun {
	dir := testDir(t)
	src := filepath.Join(suite.root, "example", "terraform")
	files, _ := filepath.Glob(filepath.Join(src, "*.tf"))
	if len(files) == 0 {
		t.Fatalf("no *.tf in %s", src)
	}
	mod := filepath.Join(dir, "module")
	if err := os.MkdirAll(mod, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if err := copyFile(f, filepath.Join(mod, filepath.Base(f))); err != nil {
			t.Fatal(err)
		}
	}
	tag := randHex(3)
	r := &tfRun{
		t: t, bin: bin, dir: mod, prefix: "tf" + tag,
		pool: "cloudimg-e2e-" + tag, poolDir: "/var/lib/libvirt/images/cloudimg-e2e-" + tag,
		logDir: dir, ports: map[string]int{}, macs: map[string]string{},
	}
	if !othersCanTraverse(dir) {
		r.logDir = "/var/lib/libvirt/images/cloudimg-e2e-" + tag + "-serial"
		if err := os.MkdirAll(r.logDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cliConfig := filepath.Join(dir, "cli.tfrc")
	writeFile(t, cliConfig, nil, 0o644)
	r.env = append(os.Environ(), "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1", "TF_CLI_CONFIG_FILE="+cliConfig, "TF_INPUT=0")

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if r.signer, err = ssh.NewSignerFromKey(priv); err != nil {
		t.Fatal(err)
	}
	sshPub, _ := ssh.NewPublicKey(pub)
	r.keyPath = filepath.Join(dir, "id_ed25519")
	block, err := ssh.MarshalPrivateKey(priv, "e2e terraform")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, r.keyPath, pem.EncodeToMemory(block), 0o600)
	writeFile(t, r.keyPath+".pub", ssh.MarshalAuthorizedKey(sshPub), 0o644)

	t.Cleanup(r.cleanup)
	start := time.Now()
	r.mustRun("init", "-plugin-dir="+plugins, "-no-color", "-input=false")
	t.Logf("%s init -plugin-dir=%s: %s", filepath.Base(bin), plugins, time.Since(start).Round(100*time.Millisecond))
	return r
}

// tfCommandTimeout bounds one runner command (an apply is 6–23 s here, a
// destroy under 10 s): past it the command is taken as hung, killed with
// its provider, and the test fails with the tails of its output and of
// TF_LOG's file.
const tfCommandTimeout = 10 * time.Minute

// tfStall is how long a command may go without a line in its TF_LOG file
// (DEBUG: the runner and the provider log every step; the longest silence
// here, the image's upload, is seconds) before it counts as stalled;
// tfStallTick is how often the file's size is looked at. Variables only
// for TestTFStall.
var (
	tfStall     = 2 * time.Minute
	tfStallTick = 5 * time.Second
)

// run runs the runner with args in the module's directory; the output goes
// to a numbered log file too, and the runner's own log (TF_LOG=DEBUG,
// provider included) to <n>-<command>.tf.log. plan, apply and destroy get
// -parallelism=1, as the example's README tells users: provider 0.8.3
// reads every libvirt_cloudinit_disk back by downloading its ISO over one
// libvirt connection, and two such downloads at once hung the provider
// (dmacvicar/terraform-provider-libvirt#594).
//
// A command that writes no TF_LOG line for tfStall has stalled: its
// provider gets SIGQUIT (its goroutines then reach TF_LOG), the command is
// killed and fails, naming the line it stopped at. That is how the
// go-libvirt deadlock the provider is built with a fix for
// (tools/libvirt-provider/go-libvirt-241.patch) was caught.
func (r *tfRun) run(args ...string) (string, error) {
	if slices.Contains([]string{"plan", "apply", "destroy"}, args[0]) {
		args = append([]string{args[0], "-parallelism=1"}, args[1:]...)
	}
	r.applied++
	base := filepath.Join(filepath.Dir(r.dir), fmt.Sprintf("%02d-%s", r.applied, args[0]))
	tfLog := base + ".tf.log"
	ctx, cancel := context.WithTimeout(context.Background(), tfCommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.bin, args...)
	cmd.Dir = r.dir
	cmd.Env = append(slices.Clone(r.env), "TF_LOG=DEBUG", "TF_LOG_PATH="+tfLog)
	// Its own process group, so that a hung provider dies with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM} // stops as after a Ctrl-C if the test binary dies
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var buf bytes.Buffer // one writer for both: exec calls it from one goroutine
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		return "", err
	}
	// The stall watch: TF_LOG's size, every 5 s.
	stalled := make(chan struct{})
	done := make(chan struct{})
	go func() {
		var size int64 = -1
		last := time.Now()
		tick := time.NewTicker(tfStallTick)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if fi, err := os.Stat(tfLog); err == nil && fi.Size() != size {
				size, last = fi.Size(), time.Now()
				continue
			}
			if time.Since(last) < tfStall {
				continue
			}
			close(stalled)
			if pids := groupPIDs(cmd.Process.Pid, "terraform-provi"); len(pids) > 0 {
				for _, pid := range pids {
					_ = syscall.Kill(pid, syscall.SIGQUIT)
				}
				select { // the dump reaches TF_LOG through the runner
				case <-done:
				case <-time.After(5 * time.Second):
				}
			}
			cancel()
			return
		}
	}()
	err := cmd.Wait()
	close(done)
	out := buf.String()
	writeFile(r.t, base+".log", []byte(out), 0o644)
	select {
	case <-stalled:
		return out, fmt.Errorf("stalled: no line in %s for %s, killed; its last line before the provider's goroutines (if any):\n%s",
			tfLog, tfStall, lastLineBefore(tfLog, "goroutine "))
	default:
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("no end after %s, killed (hung?); last lines of %s:\n%s", tfCommandTimeout, tfLog, tailFile(tfLog, 30))
	}
	return out, err
}

// lastLineBefore is the last line of the file before the first that
// contains marker (the whole file's last line when none does).
func lastLineBefore(path, marker string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	for i, l := range lines {
		if strings.Contains(l, marker) && i > 0 {
			return lines[i-1]
		}
	}
	return lines[len(lines)-1]
}

// groupPIDs lists the processes of process group pgid whose command name
// (/proc/PID/comm, at most 15 characters) starts with prefix.
func groupPIDs(pgid int, prefix string) []int {
	var pids []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if g, err := syscall.Getpgid(pid); err != nil || g != pgid {
			continue
		}
		if comm, err := os.ReadFile(filepath.Join("/proc", d.Name(), "comm")); err == nil && strings.HasPrefix(string(comm), prefix) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func (r *tfRun) mustRun(args ...string) string {
	r.t.Helper()
	out, err := r.run(args...)
	if err != nil {
		r.t.Fatalf("%s %s: %v%s\n%s", filepath.Base(r.bin), strings.Join(args, " "), err, tfErrors(out), tailLines(out, 40))
	}
	return out
}

// tfErrors is the "Error: …" lines of a runner's output (-no-color), for
// the first line of a failure: " (Error: a; Error: b)", or "".
func tfErrors(out string) string {
	var errs []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "Error: ") {
			errs = append(errs, l)
		}
	}
	if len(errs) == 0 {
		return ""
	}
	return " (" + strings.Join(errs, "; ") + ")"
}

// nodeName is the module's domain name for node i of an image (main.tf's
// local.nodes: <name>-<i>-<first 12 hex digits of the sha256>).
func (r *tfRun) nodeName(i int, img *tfImage) string {
	return fmt.Sprintf("%s-%d-%s", r.prefix, i, img.sha256[:12])
}

// prepare gives the nodes of each image an SSH port, a MAC address and an
// (existing) serial log file, for the XSLT.
func (r *tfRun) prepare(images ...*tfImage) {
	r.t.Helper()
	for _, img := range images {
		if img == nil {
			continue
		}
		for i := 0; i < 2; i++ {
			name := r.nodeName(i, img)
			if _, ok := r.ports[name]; ok {
				continue
			}
			port, err := freePort() // never one it gave before
			if err != nil {
				r.t.Fatal(err)
			}
			b := make([]byte, 3)
			_, _ = rand.Read(b)
			r.ports[name] = port
			r.macs[name] = fmt.Sprintf("52:54:00:%02x:%02x:%02x", b[0], b[1], b[2])
			// libvirt labels an existing file for QEMU; it does not create it.
			writeFile(r.t, r.serialLog(name), nil, 0o644)
		}
	}
}

func (r *tfRun) serialLog(name string) string { return filepath.Join(r.logDir, name+".serial.log") }

// xslt is the module's domain_xslt: the provider's console goes, a serial
// port writing to a file comes, and a QEMU user-mode NIC (restrict=on, SSH
// forwarded from 127.0.0.1) at PCI slot 0x10 of the pc machine's bus (slot
// 2 is the provider's VGA), chosen by the domain's name.
func (r *tfRun) xslt() string {
	names := make([]string, 0, len(r.ports))
	for n := range r.ports {
		names = append(names, n)
	}
	sort.Strings(names)
	var when strings.Builder
	for _, n := range names {
		fmt.Fprintf(&when, `
        <xsl:when test="/domain/name = '%s'">
          <qemu:arg value="-netdev"/>
          <qemu:arg value="user,id=tfnet0,restrict=on,hostfwd=tcp:127.0.0.1:%d-:22"/>
          <qemu:arg value="-device"/>
          <qemu:arg value="virtio-net-pci,netdev=tfnet0,mac=%s,bus=pci.0,addr=0x10"/>
        </xsl:when>`, n, r.ports[n], r.macs[n])
	}
	return `<?xml version="1.0"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:qemu="http://libvirt.org/schemas/domain/qemu/1.0">
  <xsl:output method="xml" indent="yes"/>
  <xsl:template match="@*|node()">
    <xsl:copy><xsl:apply-templates select="@*|node()"/></xsl:copy>
  </xsl:template>
  <xsl:template match="/domain/devices/console|/domain/devices/serial"/>
  <xsl:template match="/domain/devices">
    <xsl:copy>
      <xsl:apply-templates select="@*|node()"/>
      <serial type="file">
        <source path="{concat('` + r.logDir + `/', /domain/name, '.serial.log')}"/>
        <target port="0"/>
      </serial>
    </xsl:copy>
  </xsl:template>
  <xsl:template match="/domain">
    <xsl:copy>
      <xsl:apply-templates select="@*|node()"/>
      <qemu:commandline>
        <xsl:choose>` + when.String() + `
          <xsl:otherwise>
            <xsl:message terminate="yes">the test's XSLT has no SSH port for this domain</xsl:message>
          </xsl:otherwise>
        </xsl:choose>
      </qemu:commandline>
    </xsl:copy>
  </xsl:template>
</xsl:stylesheet>
`
}

// vars writes the module's variables (terraform.tfvars.json).
func (r *tfRun) vars(repo, pin string) {
	r.t.Helper()
	domType := "qemu"
	if accelerator() == "kvm" {
		domType = "kvm"
	}
	cpuMode := ""
	if domType == "kvm" {
		cpuMode = "host-passthrough"
	}
	v := map[string]any{
		"repository":         repo,
		"image_name":         "basic",
		"image_labels":       map[string]string{"scenario": "basic"},
		"image_sha256":       pin,
		"node_count":         2,
		"name":               r.prefix,
		"pool_name":          r.pool,
		"pool_path":          r.poolDir,
		"disk_size_gib":      tfNodeDiskGiB,
		"memory_mib":         1024,
		"vcpu":               1, // two 1-vCPU guests on the 2-CPU host (bootOutputs)
		"domain_type":        domType,
		"cpu_mode":           cpuMode,
		"network_name":       "",
		"user":               "deployer",
		"ssh_authorized_key": strings.TrimSpace(string(mustReadFile(r.t, r.keyPath+".pub"))),
		"domain_xslt":        r.xslt(),
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		r.t.Fatal(err)
	}
	writeFile(r.t, filepath.Join(r.dir, "terraform.tfvars.json"), b, 0o644)
}

// tfOutputs is the module's outputs.
type tfOutputs struct {
	Image struct {
		Value struct {
			Path       string `json:"path"`
			SHA256     string `json:"sha256"`
			BuildID    string `json:"build_id"`
			SourceName string `json:"source_name"`
		} `json:"value"`
	} `json:"image"`
	Nodes struct {
		Value []struct {
			Name       string `json:"name"`
			Hostname   string `json:"hostname"`
			InstanceID string `json:"instance_id"`
		} `json:"value"`
	} `json:"nodes"`
}

// tfNodeBoot is what the judging of one node saw.
type tfNodeBoot struct {
	name      string
	machineID string
	hostKey   ssh.PublicKey
}

// applyAndJudge (subtest step) applies with image_sha256 = pin, checks that the module
// deployed want (and that nothing of prev is left), and judges both nodes
// as first boots of want, side by side. It returns what it saw.
func (r *tfRun) applyAndJudge(step, repo, pin string, want *tfImage, prev []tfNodeBoot) []tfNodeBoot {
	t := r.t
	t.Helper()
	r.vars(repo, pin)
	applyStart := time.Now()
	r.mustRun("apply", "-auto-approve", "-no-color", "-input=false")
	r.forgetDomains() // the previous nodes are gone; the new ones are attached below
	t.Logf("%s apply (image %s %s, image_sha256 %q): %s", filepath.Base(r.bin), want.label, want.rel, pin, time.Since(applyStart).Round(100*time.Millisecond))

	var out tfOutputs
	if err := json.Unmarshal([]byte(r.mustRun("output", "-json", "-no-color")), &out); err != nil {
		t.Fatalf("output -json: %v", err)
	}
	if got := out.Image.Value; got.SHA256 != want.sha256 || got.Path != want.rel || got.BuildID != want.entry.BuildID || got.SourceName != want.entry.SourceName {
		t.Fatalf("the module deployed %+v, want %s: %s sha256 %s build_id %s source_name %s", got, want.label, want.rel, want.sha256, want.entry.BuildID, want.entry.SourceName)
	}
	var names []string
	for i, n := range out.Nodes.Value {
		if n.Name != r.nodeName(i, want) || n.InstanceID != n.Name || n.Hostname != fmt.Sprintf("%s-%d", r.prefix, i) {
			t.Errorf("output nodes[%d] = %+v, want name and instance-id %s, hostname %s-%d", i, n, r.nodeName(i, want), r.prefix, i)
		}
		names = append(names, n.Name)
	}
	if len(names) != 2 {
		t.Fatalf("output nodes: %d nodes, want 2", len(names))
	}
	// The roll left only the new domains, volumes and seeds.
	if got := r.domains(); !slices.Equal(got, names) {
		t.Errorf("libvirt domains %q after the apply, want only %q (the previous nodes destroyed)", got, names)
	}
	wantVols := []string{fmt.Sprintf("%s-image-%s.qcow2", r.prefix, want.sha256[:12])}
	for _, n := range names {
		wantVols = append(wantVols, n+".qcow2", n+"-seed.iso")
	}
	sort.Strings(wantVols)
	if got := r.volumes(); !slices.Equal(got, wantVols) {
		t.Errorf("volumes of pool %s: %q, want %q", r.pool, got, wantVols)
	}

	boots := make([]tfNodeBoot, len(names))
	t.Run(step, func(t *testing.T) {
		for i, n := range out.Nodes.Value {
			t.Run(n.Hostname, func(t *testing.T) {
				t.Parallel()
				v := r.attach(t, n.Name, n.Hostname, applyStart)
				c := checkConsumerBoot(t, v, consumerCheck{BuildHostname: buildHostname, NoReboot: true})
				checkRootGrown(t, v, tfNodeDiskGiB<<30)
				checkIdentity(t, v, repo, want)
				boots[i] = tfNodeBoot{name: n.Name, machineID: c.MachineID, hostKey: c.HostKey}
			})
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	all := append(append([]tfNodeBoot(nil), prev...), boots...)
	for i := range all {
		for j := i + 1; j < len(all); j++ {
			a, b := all[i], all[j]
			if a.machineID == b.machineID {
				t.Errorf("nodes %s and %s have the same machine-id %s", a.name, b.name, a.machineID)
			}
			if sameKey(a.hostKey, b.hostKey) {
				t.Errorf("nodes %s and %s present the same SSH host key %s", a.name, b.name, fingerprint(a.hostKey))
			}
		}
	}
	return boots
}

// attach makes a vm of the Terraform-made domain name and waits for the
// seed's user to log in with the seed's key.
func (r *tfRun) attach(t *testing.T, name, hostname string, started time.Time) *vm {
	t.Helper()
	dir := testDir(t)
	v := &vm{
		t: t, Dir: dir, SerialLog: r.serialLog(name), QemuLog: "/var/log/libvirt/qemu/" + name + ".log",
		KeyPath: r.keyPath, Seed: seedTerraform, User: "deployer", Hostname: hostname, InstanceID: name,
		MAC: r.macs[name], Network: netNone, SSHPort: r.ports[name], Accel: accelerator(), CPUs: 1,
		Started: started, signer: r.signer,
	}
	d := &libvirtDomain{name: name, external: true}
	v.dom = d
	t.Cleanup(func() {
		if t.Failed() {
			if s := tailFile(v.SerialLog, 60); s != "" {
				t.Logf("test failed; last 60 lines of %s:\n%s", v.SerialLog, s)
			}
			t.Logf("VM at the failure: %s", v.diagnose())
		}
		_ = v.Stop() // closes the SSH client; the domain is Terraform's
	})
	if err := d.attach(v); err != nil {
		t.Fatalf("libvirt domain %s: %v", name, err)
	}
	if err := v.waitSSH(); err != nil {
		t.Fatalf("SSH to %s (127.0.0.1:%d): %v", name, v.SSHPort, err)
	}
	return v
}

// checkRootGrown fails unless the root file system's partition reaches
// (almost) the end of the node's disk of diskBytes: cloud-init's growpart
// and resize_rootfs ran on the first boot.
func checkRootGrown(t testing.TB, v *vm, diskBytes int64) {
	t.Helper()
	out := v.MustRead(`src=$(findmnt -n -o SOURCE /); disk=/dev/$(lsblk -n -o PKNAME "$src" | head -n 1); ` +
		`echo "$(lsblk -b -n -d -o SIZE "$disk") $(lsblk -b -n -d -o SIZE "$src") $(df -B1 --output=size / | tail -n 1)"`)
	f := strings.Fields(out)
	if len(f) != 3 {
		t.Fatalf("guest %s: disk, root partition and root file system sizes: %q", v.label(), out)
	}
	var n [3]int64
	for i, s := range f {
		var err error
		if n[i], err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatalf("guest %s: %q: %v", v.label(), out, err)
		}
	}
	disk, part, fs := n[0], n[1], n[2]
	if disk != diskBytes {
		t.Errorf("guest %s: disk of %d bytes, want the volume's %d", v.label(), disk, diskBytes)
	}
	// The partition ends at the disk's end, less what precedes it (the
	// boot partitions: a few MiB); the file system fills it, less ext4's
	// own reserve.
	if part < disk-256<<20 || fs < part*9/10 {
		t.Errorf("guest %s: root partition %d bytes, file system %d bytes on a disk of %d: not grown", v.label(), part, fs, disk)
	}
}

// checkIdentity reads the node's /etc/cloudimg/image.json and checks that it
// names want's build, and that it joins exactly one entry of the index: want.
func checkIdentity(t testing.TB, v *vm, repo string, want *tfImage) {
	t.Helper()
	raw := v.MustRead("cat " + imagemeta.IdentityPath + " && stat -c '%a %U' " + imagemeta.IdentityPath)
	i := strings.LastIndexByte(strings.TrimSpace(raw), '\n')
	if i < 0 {
		t.Fatalf("guest %s: %s: %q", v.label(), imagemeta.IdentityPath, raw)
	}
	if mode := strings.TrimSpace(raw[i+1:]); mode != "644 root" {
		t.Errorf("guest %s: %s mode and owner %q, want 644 root", v.label(), imagemeta.IdentityPath, mode)
	}
	var id imagemeta.Identity
	if err := json.Unmarshal([]byte(raw[:i]), &id); err != nil {
		t.Fatalf("guest %s: %s: %v\n%s", v.label(), imagemeta.IdentityPath, err, raw)
	}
	m := want.meta
	if id.SchemaVersion != 1 || id.BuildID != m.Build.PackerRunUUID || id.SourceName != m.Build.SourceName || id.BuilderType != "cloudimg-kvm" ||
		id.PluginVersion != m.Build.PluginVersion || id.ResetAt.IsZero() || id.ResetAt.After(m.Build.FinishedAt) {
		t.Errorf("guest %s: identity %s, want the build of %s (%s): build_id %s, source_name %s, builder cloudimg-kvm, plugin %s, reset before %s",
			v.label(), raw[:i], want.label, want.rel, m.Build.PackerRunUUID, m.Build.SourceName, m.Build.PluginVersion, m.Build.FinishedAt)
	}
	if m.Source == nil || id.SourceImage == nil || id.SourceImage.URL != m.Source.URL || id.SourceImage.Checksum != m.Source.Checksum {
		t.Errorf("guest %s: identity source_image %+v, want the metadata's source %+v", v.label(), id.SourceImage, m.Source)
	}
	if !maps.Equal(id.Labels, wantIdentityLabels(want)) {
		t.Errorf("guest %s: identity labels %v, want %v", v.label(), id.Labels, wantIdentityLabels(want))
	}
	idx, err := (&imagemeta.Repo{Dir: repo}).ReadIndex()
	if err != nil {
		t.Fatal(err)
	}
	var joined []string
	for _, e := range idx.Images {
		if id.Matches(e) {
			joined = append(joined, e.Path)
		}
	}
	if len(joined) != 1 || joined[0] != want.rel {
		t.Errorf("guest %s: the identity joins index entries %q, want exactly %s", v.label(), joined, want.rel)
	}
}

// wantIdentityLabels: the chained template gives its reset labels, the
// basic one none.
func wantIdentityLabels(img *tfImage) map[string]string {
	if img.label == "v2" {
		return map[string]string{"scenario": "basic", "cell": img.entry.Labels["cell"]}
	}
	return nil
}

// domains lists the libvirt domains of this run (by the name prefix).
func (r *tfRun) domains() []string {
	out, err := virsh("list", "--all", "--name")
	if err != nil {
		r.t.Fatalf("virsh list: %v: %s", err, out)
	}
	var ds []string
	for _, l := range strings.Fields(out) {
		if strings.HasPrefix(l, r.prefix+"-") {
			ds = append(ds, l)
		}
	}
	sort.Strings(ds)
	return ds
}

// volumes lists the volumes of the run's pool (nil when there is no pool).
func (r *tfRun) volumes() []string {
	out, err := virsh("vol-list", "--pool", r.pool)
	if err != nil {
		return nil
	}
	lines := strings.Split(out, "\n")
	if len(lines) < 2 {
		return []string{}
	}
	vs := []string{}
	for _, l := range lines[2:] {
		if f := strings.Fields(l); len(f) > 0 {
			vs = append(vs, f[0])
		}
	}
	sort.Strings(vs)
	return vs
}

// destroy runs destroy and checks that nothing of the module is left.
func (r *tfRun) destroy() {
	t := r.t
	t.Helper()
	start := time.Now()
	r.mustRun("destroy", "-auto-approve", "-no-color", "-input=false")
	t.Logf("%s destroy: %s", filepath.Base(r.bin), time.Since(start).Round(100*time.Millisecond))
	r.forgetDomains()
	if ds := r.domains(); len(ds) > 0 {
		t.Errorf("libvirt domains left after destroy: %q", ds)
	}
	if out, err := virsh("pool-info", r.pool); err == nil {
		t.Errorf("pool %s left after destroy:\n%s", r.pool, out)
	}
	if ents, err := os.ReadDir(r.poolDir); err == nil {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("the pool's directory %s is still there after destroy, holding %q", r.poolDir, names)
	}
	if out := r.mustRun("state", "list"); strings.TrimSpace(out) != "" {
		t.Errorf("state list after destroy:\n%s", out)
	}
}

// forgetDomains drops this run's domains from the harness's registry.
func (r *tfRun) forgetDomains() {
	liveDomains.Lock()
	var names []string
	for n := range liveDomains.m {
		if strings.HasPrefix(n, r.prefix+"-") {
			names = append(names, n)
		}
	}
	liveDomains.Unlock()
	for _, n := range names {
		(&libvirtDomain{name: n}).forget()
	}
}

var tfCleanupMu sync.Mutex

// cleanup destroys what the module still holds: by destroy, and if that
// fails, domain by domain and the pool by name.
func (r *tfRun) cleanup() {
	tfCleanupMu.Lock()
	defer tfCleanupMu.Unlock()
	if len(r.domains()) > 0 || r.volumes() != nil {
		if out, err := r.run("destroy", "-auto-approve", "-no-color", "-input=false"); err != nil {
			r.t.Logf("cleanup: destroy: %v\n%s", err, tailLines(out, 20))
		}
	}
	for _, d := range r.domains() {
		_, _ = virsh("destroy", d)
		if out, err := virsh("undefine", d); err != nil {
			r.t.Logf("cleanup: virsh undefine %s: %v: %s", d, err, out)
		}
	}
	r.forgetDomains()
	if _, err := virsh("pool-info", r.pool); err == nil {
		for _, v := range r.volumes() {
			_, _ = virsh("vol-delete", "--pool", r.pool, v)
		}
		_, _ = virsh("pool-destroy", r.pool)
		_, _ = virsh("pool-delete", r.pool)
		_, _ = virsh("pool-undefine", r.pool)
	}
	if strings.HasPrefix(r.poolDir, "/var/lib/libvirt/images/cloudimg-e2e-") {
		os.RemoveAll(r.poolDir)
	}
	if strings.HasPrefix(r.logDir, "/var/lib/libvirt/images/cloudimg-e2e-") {
		// Keep the serial logs with the test's files.
		if ents, err := os.ReadDir(r.logDir); err == nil {
			for _, e := range ents {
				_ = copyFile(filepath.Join(r.logDir, e.Name()), filepath.Join(filepath.Dir(r.dir), e.Name()))
			}
		}
		os.RemoveAll(r.logDir)
	}
}

// TestTFStall checks the runner's stall watch with a stand-in runner (a
// shell script) that logs one TF_LOG line, prints a refresh's output and
// then stalls (or completes, with STALL=0).
func TestTFStall(t *testing.T) {
	defer func(s, tick time.Duration) { tfStall, tfStallTick = s, tick }(tfStall, tfStallTick)
	tfStall, tfStallTick = 2*time.Second, 100*time.Millisecond
	dir := testDir(t)
	runner := filepath.Join(dir, "tofu")
	writeFile(t, runner, []byte(`#!/bin/sh
echo "[DEBUG] reading libvirt_cloudinit_disk.seed[0]" >>"$TF_LOG_PATH"
echo "libvirt_cloudinit_disk.seed[0]: Refreshing state... [id=s]"
[ "$STALL" = 0 ] || exec sleep 600
echo "Apply complete! Resources: 0 added, 0 changed, 0 destroyed."
`), 0o755)
	for _, stall := range []string{"1", "0"} {
		t.Run("stall="+stall, func(t *testing.T) {
			mod := filepath.Join(testDir(t), "module")
			if err := os.MkdirAll(mod, 0o755); err != nil {
				t.Fatal(err)
			}
			r := &tfRun{t: t, bin: runner, dir: mod, env: append(os.Environ(), "STALL="+stall)}
			start := time.Now()
			out, err := r.run("apply", "-auto-approve")
			took := time.Since(start)
			if stall == "0" {
				if err != nil || !strings.Contains(out, "Apply complete!") {
					t.Fatalf("err = %v, output:\n%s", err, out)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "stalled") || !strings.Contains(err.Error(), "reading libvirt_cloudinit_disk.seed[0]") {
				t.Fatalf("err = %v, want a stall naming the last TF_LOG line; output:\n%s", err, out)
			}
			if took > time.Minute {
				t.Errorf("the stalled command ended after %s, not soon after the %s stall", took, tfStall)
			}
			if !strings.Contains(out, "Refreshing state...") {
				t.Errorf("the output of the killed command is lost:\n%s", out)
			}
		})
	}
}
