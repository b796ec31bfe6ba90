//go:build e2e

package e2e

// Helpers shared by the scenario tests (scenario_*_test.go): template
// copies, checks of the metadata and the image repository on the host, and
// checks run in guests booted from the output images.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"golang.org/x/crypto/ssh"
)

// buildUser is the build user the builder's seed creates (ssh_username's
// default) and the reset removes.
const buildUser = "packer"

// copyScenario copies the files of testdata/scenarios/<name> into dir, where
// Packer then runs, and returns dir.
func copyScenario(t testing.TB, name, dir string) string {
	t.Helper()
	src := testdata(t, "scenarios", name)
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, e.Name()), b, 0o644)
	}
	return dir
}

// buildArgs returns the arguments of `packer build` after "build":
// -color=false (packer.out stays readable), -var k=v ... (sorted), template.
func buildArgs(vars map[string]string, template string) []string {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := []string{"-color=false"}
	for _, k := range keys {
		args = append(args, "-var", k+"="+vars[k])
	}
	return append(args, template)
}

// timings collects how long the phases of a scenario took and logs them at
// the end of the test, passed or not.
type timings struct {
	t     testing.TB
	start time.Time
	mu    sync.Mutex
	parts []string
}

func newTimings(t testing.TB) *timings {
	tm := &timings{t: t, start: time.Now()}
	t.Cleanup(func() {
		tm.mu.Lock()
		defer tm.mu.Unlock()
		t.Logf("TIMING %s: total %s (%s)", t.Name(), time.Since(tm.start).Round(time.Second), strings.Join(tm.parts, ", "))
	})
	return tm
}

// since records the time since start under name.
func (tm *timings) since(name string, start time.Time) {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	tm.parts = append(tm.parts, fmt.Sprintf("%s %s", name, time.Since(start).Round(time.Second)))
}

// ------------------------------------------------------------ host side --

// scMetadata is the part of <image>.metadata.json the scenarios check,
// decoded as any consumer of the file would.
type scMetadata struct {
	SchemaVersion int `json:"schema_version"`
	Image         struct {
		Name      string            `json:"name"`
		Path      string            `json:"path"`
		Format    string            `json:"format"`
		SizeBytes int64             `json:"size_bytes"`
		Checksums map[string]string `json:"checksums"`
		Firmware  string            `json:"firmware"`
		Arch      string            `json:"arch"`
	} `json:"image"`
	Source *struct {
		URL      string `json:"url"`
		Checksum string `json:"checksum"`
	} `json:"source"`
	Build struct {
		Name       string `json:"name"`
		SourceName string `json:"source_name"`
	} `json:"build"`
	Labels   map[string]string `json:"labels"`
	Sidecars []scSidecar       `json:"sidecars"`
	Guest    *struct {
		OSRelease map[string]string `json:"os_release"`
		Packages  []struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"packages"`
		Reset *struct {
			User         string   `json:"user"`
			DryRun       bool     `json:"dry_run"`
			RemovedPaths []string `json:"removed_paths"`
			Hostname     *struct {
				BuildNames []string `json:"build_names"`
				Restore    string   `json:"restore"`
			} `json:"hostname"`
			Checks []struct {
				Name   string `json:"name"`
				OK     bool   `json:"ok"`
				Detail string `json:"detail"`
			} `json:"checks"`
		} `json:"reset"`
	} `json:"guest"`

	bom *cdx.BOM // the SBOM beside the image (checkDocuments)
}

// checkMetadata reads <image>.metadata.json and checks it against the image
// file and the source image; it returns the decoded document.
func checkMetadata(t testing.TB, image, sourceSHA256 string) *scMetadata {
	t.Helper()
	path := image + ".metadata.json"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	if !json.Valid(b) {
		t.Fatalf("metadata: %s is not valid JSON:\n%s", path, b)
	}
	var m scMetadata
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("metadata: %s: %v", path, err)
	}
	if m.SchemaVersion != 1 {
		t.Errorf("metadata: schema_version %d, want 1", m.SchemaVersion)
	}
	if want := fileSHA256(t, image); m.Image.Checksums["sha256"] != want {
		t.Errorf("metadata: image.checksums.sha256 %q, but the image file's sha256 is %s", m.Image.Checksums["sha256"], want)
	}
	if fi, err := os.Stat(image); err == nil && m.Image.SizeBytes != fi.Size() {
		t.Errorf("metadata: image.size_bytes %d, but the image file has %d bytes", m.Image.SizeBytes, fi.Size())
	}
	if m.Image.Format != "qcow2" {
		t.Errorf("metadata: image.format %q, want qcow2", m.Image.Format)
	}
	if m.Image.Firmware != "bios" && m.Image.Firmware != "uefi" {
		t.Errorf("metadata: image.firmware %q, want bios or uefi", m.Image.Firmware)
	}
	switch {
	case m.Source == nil:
		t.Errorf("metadata: no source section")
	case !strings.Contains(strings.ToLower(m.Source.Checksum), sourceSHA256):
		t.Errorf("metadata: source.checksum %q is not the test image's sha256 %s", m.Source.Checksum, sourceSHA256)
	}
	switch {
	case m.Guest == nil:
		t.Errorf("metadata: no guest section (the reset provisioner's facts)")
	case m.Guest.Reset == nil:
		t.Errorf("metadata: guest has no reset report")
	default:
		r := m.Guest.Reset
		if r.User != buildUser {
			t.Errorf("metadata: guest.reset.user %q, want %q", r.User, buildUser)
		}
		if r.DryRun {
			t.Errorf("metadata: guest.reset.dry_run is true")
		}
		if len(r.Checks) == 0 {
			t.Errorf("metadata: guest.reset.checks is empty")
		}
		for _, c := range r.Checks {
			if !c.OK {
				t.Errorf("metadata: reset check %s failed: %s", c.Name, c.Detail)
			}
		}
	}
	if m.Guest != nil && m.Guest.OSRelease["ID"] != "debian" {
		t.Errorf("metadata: guest.os_release.ID %q, want debian", m.Guest.OSRelease["ID"])
	}
	m.bom = checkDocuments(t, image, sourceSHA256, &m)
	return &m
}

// hasPackage reports whether the guest facts list package name.
func (m *scMetadata) hasPackage(name string) bool {
	if m.Guest == nil {
		return false
	}
	for _, p := range m.Guest.Packages {
		if p.Name == name {
			return true
		}
	}
	return false
}

// scIndex is the repository's index.json.
type scIndex struct {
	SchemaVersion int               `json:"schema_version"`
	Images        []scIndexEntry    `json:"images"`
	Latest        map[string]string `json:"latest"`
}

// scIndexEntry is one image of index.json.
type scIndexEntry struct {
	Name      string            `json:"name"`
	Path      string            `json:"path"`
	ID        string            `json:"id"`
	Labels    map[string]string `json:"labels"`
	Checksums map[string]string `json:"checksums"`
	Size      int64             `json:"size"`
	Firmware  string            `json:"firmware"`
	Created   time.Time         `json:"created"`
	Sidecars  []scSidecar       `json:"sidecars"`
}

// checkRepository runs `sha256sum -c --strict SHA256SUMS` in repo, checks
// that SHA256SUMS and index.json list every image given (paths relative to
// repo) with its real sha256, and returns the index.
func checkRepository(t testing.TB, repo string, images ...string) *scIndex {
	t.Helper()
	cmd := exec.Command("sha256sum", "-c", "--strict", "SHA256SUMS")
	cmd.Dir = repo
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("repository: sha256sum -c SHA256SUMS in %s: %v\n%s", repo, err, out)
	}
	sums, err := os.ReadFile(filepath.Join(repo, "SHA256SUMS"))
	if err != nil {
		t.Fatalf("repository: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(repo, "index.json"))
	if err != nil {
		t.Fatalf("repository: %v", err)
	}
	var idx scIndex
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatalf("repository: index.json: %v\n%s", err, b)
	}
	if idx.SchemaVersion != 1 {
		t.Errorf("repository: index.json schema_version %d, want 1", idx.SchemaVersion)
	}
	for _, rel := range images {
		sum := fileSHA256(t, filepath.Join(repo, rel))
		if !regexp.MustCompile(`(?m)^` + sum + ` [ *]` + regexp.QuoteMeta(rel) + `$`).Match(sums) {
			t.Errorf("repository: SHA256SUMS has no line %q:\n%s", sum+"  "+rel, sums)
		}
		e := idx.entry(rel)
		if e == nil {
			t.Errorf("repository: index.json does not list %s:\n%s", rel, b)
			continue
		}
		if e.Checksums["sha256"] != sum {
			t.Errorf("repository: index.json gives %s sha256 %q, the file has %s", rel, e.Checksums["sha256"], sum)
		}
		if e.Name == "" {
			t.Errorf("repository: index.json gives %s no name", rel)
		}
		for _, sc := range e.Sidecars {
			if !regexp.MustCompile(`(?m)^` + sc.SHA256 + ` [ *]` + regexp.QuoteMeta(sc.Path) + `$`).Match(sums) {
				t.Errorf("repository: SHA256SUMS has no line for %s's %s sidecar %s:\n%s", rel, sc.Kind, sc.Path, sums)
			}
		}
	}
	return &idx
}

// entry returns the index entry of the image at rel, or nil.
func (idx *scIndex) entry(rel string) *scIndexEntry {
	for i := range idx.Images {
		if idx.Images[i].Path == rel {
			return &idx.Images[i]
		}
	}
	return nil
}

// qemuProcsUnder lists the QEMU processes (any user) whose command line
// mentions dir, as "pid cmdline" lines.
func qemuProcsUnder(dir string) []string {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cl, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cl) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cl), "\x00"), "\x00")
		if !strings.Contains(filepath.Base(args[0]), "qemu-system") || !bytes.Contains(cl, []byte(dir)) {
			continue
		}
		if pid, _ := strconv.Atoi(e.Name()); procGone(pid) {
			continue // a zombie is no VM
		}
		out = append(out, e.Name()+" "+strings.Join(args, " "))
	}
	return out
}

// procGone reports whether pid no longer runs: gone, or a zombie not yet
// waited for (its /proc/PID/stat state is Z).
func procGone(pid int) bool {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(st), ')')
	return i >= 0 && strings.HasPrefix(strings.TrimSpace(string(st[i+1:])), "Z")
}

// buildDeb builds an architecture-independent .deb named <name>_1.0_all.deb
// in dir with dpkg-deb from a generated tree: DEBIAN/control (with depends,
// if not empty) and DEBIAN/postinst; it returns the .deb's path.
func buildDeb(t testing.TB, dir, name, depends, postinst string) string {
	t.Helper()
	root := filepath.Join(dir, name+"-pkg")
	if err := os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "usr", "share", "doc", name), 0o755); err != nil {
		t.Fatal(err)
	}
	control := fmt.Sprintf("Package: %s\nVersion: 1.0\nArchitecture: all\nMaintainer: cloudimg e2e <e2e@example.invalid>\nSection: misc\nPriority: optional\n", name)
	if depends != "" {
		control += "Depends: " + depends + "\n"
	}
	control += "Description: cloudimg e2e test package " + name + "\n Built by the end-to-end tests of packer-plugin-cloudimg.\n"
	writeFile(t, filepath.Join(root, "DEBIAN", "control"), []byte(control), 0o644)
	writeFile(t, filepath.Join(root, "DEBIAN", "postinst"), []byte(postinst), 0o755)
	writeFile(t, filepath.Join(root, "usr", "share", "doc", name, "README"), []byte(name+": e2e test package\n"), 0o644)
	deb := filepath.Join(dir, name+"_1.0_all.deb")
	if out, err := runLogged(dir, nil, "dpkg-deb", "--root-owner-group", "--build", root, deb); err != nil {
		t.Fatalf("dpkg-deb --build %s: %v\n%s", root, err, out)
	}
	return deb
}

// ----------------------------------------------------------- guest side --

// guestScript runs a read-only shell script in the guest as root (through
// sudo, fed base64-encoded on the command line, so it may contain any
// quoting) and fails the test unless it exits 0; it returns stdout.
func guestScript(t testing.TB, v *vm, script string) string {
	t.Helper()
	enc := base64.StdEncoding.EncodeToString([]byte(script))
	return v.MustRead("echo " + enc + " | base64 -d | sudo -n sh -eu")
}

// upload writes data to path in the guest (as the login user) through the
// stdin of an SSH session running `cat > path`.
func upload(t testing.TB, v *vm, data []byte, path string) {
	t.Helper()
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		c, err := v.connected(5 * time.Minute)
		if err != nil {
			t.Fatalf("upload to %s: %v", path, err)
		}
		sess, err := c.NewSession()
		if err != nil {
			v.dropClient(c) // dead connection: redial and retry
			lastErr = err
			continue
		}
		sess.Stdin = bytes.NewReader(data)
		var stderr bytes.Buffer
		sess.Stderr = &stderr
		err = sess.Run("cat > '" + strings.ReplaceAll(path, "'", `'\''`) + "'")
		sess.Close()
		var ee *ssh.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("upload to %s: exit %d: %s", path, ee.ExitStatus(), stderr.String())
		}
		if err != nil {
			v.dropClient(c)
			lastErr = err
			continue // writing the whole file again is harmless
		}
		if got := strings.TrimSpace(v.MustRead("stat -c %s '" + path + "'")); got != strconv.Itoa(len(data)) {
			t.Fatalf("upload to %s: %s bytes arrived, want %d", path, got, len(data))
		}
		return
	}
	t.Fatalf("upload to %s: %v", path, lastErr)
}

// buildUserGoneScript prints one line per trace of the build user left in
// the account files (and their `-` backups), sudoers and /home. No output
// means none.
const buildUserGoneScript = `
u=` + buildUser + `
for f in /etc/passwd /etc/shadow /etc/group /etc/gshadow /etc/subuid /etc/subgid \
         /etc/passwd- /etc/shadow- /etc/group- /etc/gshadow- /etc/subuid- /etc/subgid-; do
  [ -e "$f" ] || continue
  awk -F: -v u="$u" -v f="$f" '$1 == u { print f ": entry: " $1 }' "$f"
done
for f in /etc/group /etc/group-; do
  [ -e "$f" ] || continue
  awk -F: -v u="$u" -v f="$f" '{ n = split($4, m, ","); for (i = 1; i <= n; i++) if (m[i] == u) print f ": member of " $1 }' "$f"
done
for f in /etc/gshadow /etc/gshadow-; do
  [ -e "$f" ] || continue
  awk -F: -v u="$u" -v f="$f" '{ for (k = 3; k <= 4; k++) { n = split($k, m, ","); for (i = 1; i <= n; i++) if (m[i] == u) print f ": field " k " of " $1 } }' "$f"
done
grep -rlw -- "$u" /etc/sudoers /etc/sudoers.d 2>/dev/null | sed 's/$/: mentions the build user/' || true
[ ! -e "/home/$u" ] || echo "/home/$u exists"
! getent passwd "$u" >/dev/null || echo "getent passwd $u: found"
! getent group "$u" >/dev/null || echo "getent group $u: found"
[ ! -e "/var/spool/mail/$u" ] || echo "/var/spool/mail/$u exists"
`

// checkBuildUserGone fails the test if the guest keeps any trace of the
// build user.
func checkBuildUserGone(t testing.TB, v *vm) {
	t.Helper()
	if out := strings.TrimSpace(guestScript(t, v, buildUserGoneScript)); out != "" {
		t.Errorf("guest %s: the build user %q is still there:\n%s", v.Hostname, buildUser, out)
	}
}

// checkFirstBoot checks that the guest went through a cloud-init first boot
// with the VM's own seed: cloud-init done, the new instance the only one,
// the seed's user logged in and its hostname set.
func checkFirstBoot(t testing.TB, v *vm) {
	t.Helper()
	if out := v.MustRead("cloud-init status"); !strings.Contains(out, "status: done") {
		t.Errorf("guest %s: cloud-init status: %q, want done", v.Hostname, strings.TrimSpace(out))
	}
	if got := strings.Fields(v.MustRead("sudo -n ls -1A /var/lib/cloud/instances")); len(got) != 1 || got[0] != v.InstanceID {
		t.Errorf("guest %s: /var/lib/cloud/instances holds %q, want only the new instance %q", v.Hostname, got, v.InstanceID)
	}
	if got := strings.TrimSpace(v.MustRead("sudo -n cat /var/lib/cloud/data/instance-id")); got != v.InstanceID {
		t.Errorf("guest %s: cloud-init instance-id %q, want %q", v.Hostname, got, v.InstanceID)
	}
	if got := strings.TrimSpace(v.MustRead("id -un")); got != v.User {
		t.Errorf("logged in as %q, want %q", got, v.User)
	}
	if got := strings.TrimSpace(v.MustRead("hostname")); got != v.Hostname {
		t.Errorf("guest hostname %q, want %q from the new seed", got, v.Hostname)
	}
}

var machineIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)

// machineID returns the guest's /etc/machine-id, failing the test unless
// it is a valid one.
func machineID(t testing.TB, v *vm) string {
	t.Helper()
	id := strings.TrimSpace(v.MustRead("cat /etc/machine-id"))
	if !machineIDRe.MatchString(id) {
		t.Errorf("guest %s: /etc/machine-id is %q, want 32 hex digits", v.Hostname, id)
	}
	return id
}

// bootOutputs boots img once per vmOptions, all at the same time (one
// parallel subtest each, named by the options' User), runs check in each,
// and returns when all are done and their VMs stopped. Side by side, a VM
// gets 1 vCPU unless its options say otherwise: on this 2-CPU host two
// 1-vCPU TCG guests reached SSH in ~65 s where two 2-vCPU guests took ~90 s
// (TestConsumerBootTimings), and no more vCPU threads than host CPUs means
// no guest starved of CPU while it calibrates its timers.
func bootOutputs(t *testing.T, opts []vmOptions, img func(i int) string, check func(t *testing.T, i int, v *vm)) {
	t.Helper()
	t.Run("boot", func(t *testing.T) {
		for i, o := range opts {
			if o.CPUs == 0 && len(opts) > 1 {
				o.CPUs = 1
			}
			t.Run(o.User, func(t *testing.T) {
				t.Parallel()
				v := bootVM(t, img(i), o)
				v.WaitCloudInit()
				check(t, i, v)
			})
		}
	})
}

// sameKey reports whether two SSH public keys are equal.
func sameKey(a, b ssh.PublicKey) bool {
	return a != nil && b != nil && bytes.Equal(a.Marshal(), b.Marshal())
}

func mustReadFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// buildPacker runs `packer build args...` in dir (args without "build").
// It is run once: the test image boots with no_timer_check, so the TCG
// early-timer panic that once made builds flaky on a loaded host cannot
// happen, and any failure is the test's to report.
func buildPacker(t testing.TB, dir string, args ...string) *packerRun {
	t.Helper()
	return runPacker(t, dir, append([]string{"build"}, args...)...)
}

// ownTempDir makes a temporary directory for the Packer runs of one test
// (pass it as TMPDIR with startPackerEnv), so that what they leave in it can
// be judged without the other tests' and users' files; the test's cleanup
// removes it. It is short: the builder's QMP socket lives below it.
func ownTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "e2e-tmpdir-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// checkNothingInTempDir fails the test for every file a finished Packer run
// left in its TMPDIR (see ownTempDir): the builder's lock files
// (packer-cloudimg-*.lock) and temporary directories (cloudimg-*), or the
// Ansible plugin's copy of the build's private key (ansible-key*).
func checkNothingInTempDir(t testing.TB, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("left in the build's temporary directory %s: %s", dir, e.Name())
	}
}

// authorizedKeyRe finds the key type and base64 blob of an authorized_keys
// line, after any options (which may hold quoted spaces).
var authorizedKeyRe = regexp.MustCompile(`(?:^|\s)((?:ssh|ecdsa|sk)-[A-Za-z0-9@.-]+)\s+([A-Za-z0-9+/]+=*)`)

// authorizedKeys returns the keys of an authorized_keys file as
// "<type> <base64>", without options or comments.
func authorizedKeys(content string) []string {
	var keys []string
	for _, l := range strings.Split(content, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if m := authorizedKeyRe.FindStringSubmatch(l); m != nil {
			keys = append(keys, m[1]+" "+m[2])
		} else {
			keys = append(keys, "unparsed: "+l)
		}
	}
	return keys
}

// checkNoBuildTraces fails the test if any file under /etc or /var/lib of
// the guest names the build VM's host name, NIC MAC address or instance-id
// (as whole words, in any case): a clone that carries one of them shares an
// identity with the build and with every other clone.
func checkNoBuildTraces(t testing.TB, v *vm, b buildTraces) {
	t.Helper()
	script := fmt.Sprintf(`rc=0
grep -rlwisF -D skip -e '%s' -e '%s' -e '%s' /etc /var/lib || rc=$?
[ "$rc" -le 1 ]
`, b.hostname, b.mac, b.instanceID)
	if out := strings.TrimSpace(guestScript(t, v, script)); out != "" {
		t.Errorf("guest %s: files naming the build VM (host name %s, MAC %s or instance-id %s):\n%s", v.Hostname, b.hostname, b.mac, b.instanceID, out)
	}
}
