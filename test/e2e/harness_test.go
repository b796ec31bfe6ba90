//go:build e2e

// Package e2e is the end-to-end test suite: the real Packer binary builds
// real images with the plugin under QEMU, and the tests boot the results again
// without the plugin to check them. Run it with `make e2e`, i.e.
//
//	CLOUDIMG_E2E=1 go test -tags e2e -count=1 -v -timeout 80m ./test/e2e/
//
// Every run gets a work directory <repo>/.e2e/<timestamp>/ (kept afterwards,
// its path is printed first) with one sub-directory per test holding Packer's
// output and log and the serial logs of every VM. Packer's download cache is
// shared between runs in <repo>/.e2e/packer_cache.
//
// Environment:
//
//	CLOUDIMG_E2E=1        required; without it the suite skips itself
//	CLOUDIMG_E2E_IMAGE_DEBIAN_12, CLOUDIMG_E2E_IMAGE_DEBIAN_13,
//	CLOUDIMG_E2E_IMAGE_DEBIAN_13_ARM64
//	                      use this qcow2 as the cell's test image instead of
//	                      building it with test/e2e/image/build.sh CELL
//	CLOUDIMG_E2E_CELL     run every scenario on this cell (debian-12 or
//	                      debian-13) instead of the one it names (scenarios
//	                      of another architecture keep their own cell)
//	CLOUDIMG_E2E_TERRAFORM=0|both  leave TestScenarioBasic/terraform's loop
//	                      out, or run it with the terraform on the PATH as
//	                      well as with OpenTofu (the default: OpenTofu only)
//	CLOUDIMG_E2E_ARM64=0  leave TestScenarioARM64 out (its cold test image
//	                      takes 18-25 min to build on an x86 host)
//	CLOUDIMG_E2E_PACKER   the Packer binary to drive (default tools/bin/packer,
//	                      the newest; make e2e-oldest-packer passes
//	                      tools/bin/packer-1.11.2)
//	CLOUDIMG_E2E_SSH_DEADLINE  how long bootVM waits for a login after a
//	                      boot (Go duration, default 10m; raise it on a
//	                      crowded host, where TCG guests slow down a lot)
package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	modulePath   = "github.com/packer-cloudimg/packer-plugin-cloudimg"
	pluginSource = "github.com/packer-cloudimg/cloudimg"
	ansibleSrc   = "github.com/hashicorp/ansible"
)

// suite holds what TestMain prepared; read-only once tests run.
var suite struct {
	root       string // repository root
	work       string // this run's work directory, kept after the run
	packer     string // tools/bin/packer
	pluginBin  string // the plugin built for this run
	pluginPath string // PACKER_PLUGIN_PATH
	cacheDir   string // PACKER_CACHE_DIR, shared between runs
}

func TestMain(m *testing.M) {
	if os.Getenv("CLOUDIMG_E2E") != "1" {
		fmt.Println("e2e: skipped; set CLOUDIMG_E2E=1 (make e2e) to run the end-to-end tests")
		os.Exit(0)
	}
	// A process started with SIGINT ignored (e.g. from the background of a
	// non-interactive shell) passes the ignored disposition on to its
	// children, and Packer would then never see the Ctrl-C the tests send.
	// Handling the signal here (and dropping it, as before) makes exec reset
	// it to the default in every child.
	if signal.Ignored(os.Interrupt) {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, os.Interrupt)
		go func() {
			for range ch {
			}
		}()
	}
	if err := setupSuite(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: setup failed: %v\n", err)
		os.Exit(1)
	}
	tee, err := teeStdout()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: setup failed: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	if recap := failureRecap(tee.stop()); recap != "" {
		fmt.Printf("e2e: the failed tests' last messages (their whole output is above):\n%s", recap)
	}
	if n := killAllVMs(); n > 0 {
		fmt.Fprintf(os.Stderr, "e2e: killed %d QEMU process(es) that outlived their test\n", n)
		if code == 0 {
			code = 1
		}
	}
	fmt.Printf("e2e: work directory (kept): %s\n", suite.work)
	os.Exit(code)
}

func setupSuite() error {
	root, err := findRepoRoot()
	if err != nil {
		return err
	}
	suite.root = root

	suite.packer = filepath.Join(root, "tools", "bin", "packer")
	if p := os.Getenv("CLOUDIMG_E2E_PACKER"); p != "" {
		if suite.packer, err = filepath.Abs(p); err != nil {
			return err
		}
	}
	ansiblePlugin := filepath.Join(root, "tools", "bin", "packer-plugin-ansible")
	for _, p := range []string{suite.packer, ansiblePlugin} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s is missing: run make tools (%v)", p, err)
		}
	}

	base := filepath.Join(root, ".e2e")
	if err := os.MkdirAll(base, 0o755); err != nil {
		return err
	}
	stamp := time.Now().Format("20060102-150405")
	for i := 0; ; i++ {
		name := stamp
		if i > 0 {
			name = fmt.Sprintf("%s.%d", stamp, i)
		}
		dir := filepath.Join(base, name)
		err := os.Mkdir(dir, 0o755)
		if err == nil {
			suite.work = dir
			break
		}
		if !errors.Is(err, os.ErrExist) || i > 100 {
			return err
		}
	}
	fmt.Printf("e2e: work directory: %s\n", suite.work)
	if out, err := exec.Command(suite.packer, "version").Output(); err == nil {
		fmt.Printf("e2e: %s (%s)\n", strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0]), suite.packer)
	}

	suite.cacheDir = filepath.Join(base, "packer_cache")
	if err := os.MkdirAll(suite.cacheDir, 0o755); err != nil {
		return err
	}
	suite.pluginPath = filepath.Join(suite.work, "plugins")
	if err := os.MkdirAll(suite.pluginPath, 0o755); err != nil {
		return err
	}

	start := time.Now()
	suite.pluginBin = filepath.Join(suite.work, "packer-plugin-cloudimg")
	if out, err := runLogged(root, nil, "go", "build", "-o", suite.pluginBin, "."); err != nil {
		return fmt.Errorf("go build of the plugin: %v\n%s", err, out)
	}
	for _, p := range [][2]string{{suite.pluginBin, pluginSource}, {ansiblePlugin, ansibleSrc}} {
		out, err := runLogged(suite.work, packerEnv(), suite.packer, "plugins", "install", "--path", p[0], p[1])
		if err != nil {
			return fmt.Errorf("packer plugins install --path %s %s: %v\n%s", p[0], p[1], err, out)
		}
	}
	fmt.Printf("e2e: plugin built and installed in %s (%s)\n", suite.pluginPath, time.Since(start).Round(time.Millisecond))
	return nil
}

// findRepoRoot walks up from the working directory (go test runs in the
// package directory) to the go.mod of this module.
func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module "+modulePath+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s above the working directory", modulePath)
		}
		dir = parent
	}
}

// packerEnv is the environment of every Packer process: the caller's, with
// this run's plugin directory, the shared cache and no update checks.
func packerEnv() []string {
	drop := map[string]bool{
		"PACKER_PLUGIN_PATH": true, "PACKER_CACHE_DIR": true, "CHECKPOINT_DISABLE": true,
		"PACKER_LOG": true, "PACKER_LOG_PATH": true, "PACKER_CONFIG_DIR": true,
		// The caller's registry credentials stay out of the tests (a test
		// registry's come through startPackerEnv).
		"DOCKER_CONFIG": true, "REGISTRY_AUTH_FILE": true,
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if drop[k] || strings.HasPrefix(k, "PKR_VAR_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"PACKER_PLUGIN_PATH="+suite.pluginPath,
		"PACKER_CACHE_DIR="+suite.cacheDir,
		// Packer's own config (and plugins it might find there) stays out of the way.
		"PACKER_CONFIG_DIR="+filepath.Join(suite.work, "packer_config"),
		"CHECKPOINT_DISABLE=1",
	)
}

// runLogged runs a short command and returns its combined output.
func runLogged(dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

var testDirs struct {
	sync.Mutex
	used map[string]int
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// testDir returns a new directory for this test under the run's work
// directory, kept after the run: <work>/<TestName>[.N].
func testDir(t testing.TB) string {
	t.Helper()
	name := unsafeName.ReplaceAllString(t.Name(), "_")
	testDirs.Lock()
	if testDirs.used == nil {
		testDirs.used = map[string]int{}
	}
	n := testDirs.used[name]
	testDirs.used[name] = n + 1
	testDirs.Unlock()
	if n > 0 {
		name = fmt.Sprintf("%s.%d", name, n)
	}
	dir := filepath.Join(suite.work, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// testdata returns the absolute path of a file under test/e2e/testdata.
func testdata(t testing.TB, elem ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{suite.root, "test", "e2e", "testdata"}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// cell names a test image: a distribution release with its network stack
// and cloud-init, built by test/e2e/image/build.sh CELL. Scenarios name the
// cell they need; CLOUDIMG_E2E_CELL moves every scenario to one cell.
type cell string

const (
	// debian12 is bookworm with ifupdown + dhclient and cloud-init 22.4:
	// the old network layout and the old cloud-init (status exits 0 or 1).
	debian12 cell = "debian-12"
	// debian13 is trixie with netplan + systemd-networkd + resolved,
	// cloud-init 25.1 (status exits 2 on recoverable errors) and ds-identify:
	// the layout of Debian's genericcloud images and of Ubuntu 24.04.
	debian13 cell = "debian-13"
	// debian13ARM64 is the debian-13 recipe for arm64: UEFI only (GPT,
	// BOOTAA64.EFI), console on the PL011 (ttyAMA0), booted on QEMU's virt
	// machine, emulated on x86 hosts.
	debian13ARM64 cell = "debian-13-arm64"
)

// arch is the cell's architecture (a guestMachines key).
func (c cell) arch() string {
	if strings.HasSuffix(string(c), "-arm64") {
		return "arm64"
	}
	return "amd64"
}

// orDefault is c, or CLOUDIMG_E2E_CELL when that is set and of the same
// architecture (an arm64 scenario stays on its arm64 cell, and the other way round).
func (c cell) orDefault() cell {
	if e := cell(os.Getenv("CLOUDIMG_E2E_CELL")); e != "" && e.arch() == c.arch() {
		return e
	}
	return c
}

// envName is the variable that points the cell at a ready image:
// CLOUDIMG_E2E_IMAGE_DEBIAN_13 for debian-13.
func (c cell) envName() string {
	return "CLOUDIMG_E2E_IMAGE_" + strings.ToUpper(strings.ReplaceAll(string(c), "-", "_"))
}

var images struct {
	sync.Mutex
	m map[cell]*imageOnce
}

type imageOnce struct {
	once sync.Once
	path string
	err  error
}

// testImage returns the path of the cell's test cloud image (qcow2),
// building it on first use with test/e2e/image/build.sh, which caches it
// between runs. CLOUDIMG_E2E_IMAGE_<CELL> overrides it (see cell.envName).
// The image must not be written to: boot it through an overlay (bootVM
// does) or let Packer copy it.
func testImage(t testing.TB, c cell) string {
	t.Helper()
	c = c.orDefault()
	images.Lock()
	if images.m == nil {
		images.m = map[cell]*imageOnce{}
	}
	img := images.m[c]
	if img == nil {
		img = &imageOnce{}
		images.m[c] = img
	}
	images.Unlock()
	img.once.Do(func() {
		if p := os.Getenv(c.envName()); p != "" {
			img.path, img.err = filepath.Abs(p)
			if img.err == nil {
				_, img.err = os.Stat(img.path)
			}
			return
		}
		img.path, img.err = buildTestImage(c)
	})
	if img.err != nil {
		t.Fatalf("test image %s: %v", c, img.err)
	}
	return img.path
}

func buildTestImage(c cell) (string, error) {
	script := filepath.Join(suite.root, "test", "e2e", "image", "build.sh")
	if _, err := os.Stat(script); err != nil {
		return "", fmt.Errorf("%s: %w (the test image recipe is missing)", script, err)
	}
	logPath := filepath.Join(suite.work, "image-build-"+string(c)+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return "", err
	}
	defer logf.Close()
	start := time.Now()
	fmt.Fprintf(os.Stderr, "e2e: test image: running %s (log: %s)\n", script, logPath)
	var stdout bytes.Buffer
	cmd := exec.Command(script, string(c))
	cmd.Dir = suite.root
	cmd.Stdout = io.MultiWriter(&stdout, logf)
	// Progress goes to the terminal as well: a cold build takes minutes.
	cmd.Stderr = io.MultiWriter(os.Stderr, logf)
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s failed after %s: %v (see %s)", script, time.Since(start).Round(time.Second), err, logPath)
	}
	var last string
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			last = l
		}
	}
	if last == "" {
		return "", fmt.Errorf("%s printed no image path on stdout", script)
	}
	if _, err := os.Stat(last); err != nil {
		return "", fmt.Errorf("%s printed %q as the image, but: %v", script, last, err)
	}
	fmt.Fprintf(os.Stderr, "e2e: test image: %s (%s)\n", last, time.Since(start).Round(time.Second))
	return last, nil
}

var sums struct {
	sync.Mutex
	m map[string]string // path|mtime|size -> hex sha256
}

// fileSHA256 returns the hex sha256 of a file, computed once per path,
// modification time and size for the whole run.
func fileSHA256(t testing.TB, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	key := fmt.Sprintf("%s|%d|%d", path, fi.ModTime().UnixNano(), fi.Size())
	sums.Lock()
	defer sums.Unlock()
	if s, ok := sums.m[key]; ok {
		return s
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("hashing %s: %v", path, err)
	}
	s := hex.EncodeToString(h.Sum(nil))
	if sums.m == nil {
		sums.m = map[string]string{}
	}
	sums.m[key] = s
	return s
}

// testImageSHA256 is the hex sha256 of the cell's testImage, for iso_checksum.
func testImageSHA256(t testing.TB, c cell) string {
	t.Helper()
	return fileSHA256(t, testImage(t, c))
}

// tailFile returns the last n lines of a file ("" if it cannot be read).
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return tailLines(string(b), n)
}

func tailLines(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
