// Package packertest runs the real Packer (tools/bin/packer) with this
// checkout's plugin installed, for the components' tests that drive Packer
// without a VM. It is test support only: no component imports it outside
// its tests.
package packertest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Packer runs tools/bin/packer with the plugin of this checkout installed.
type Packer struct {
	// Work is the test's scratch directory holding the plugin build and
	// Packer's plugin, config and cache directories.
	Work string
	bin  string
	env  []string
}

// New builds the plugin from the checkout at root (relative to the test's
// package directory, e.g. "../.."), gives Packer a clean
// environment under a temporary directory (the caller's PACKER_* and
// PKR_VAR_* variables are dropped, extraEnv is added as KEY=VALUE) and
// installs the plugin as github.com/packer-cloudimg/cloudimg. It skips the
// test under -short and fails it when tools/bin/packer is missing (run make
// tools) or a step fails.
func New(t *testing.T, root string, extraEnv ...string) *Packer {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the plugin and runs Packer")
	}
	root, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	p := &Packer{Work: t.TempDir(), bin: filepath.Join(root, "tools", "bin", "packer")}
	if _, err := os.Stat(p.bin); err != nil {
		t.Fatalf("%s is missing: run make tools (%v)", p.bin, err)
	}
	plugin := filepath.Join(p.Work, "packer-plugin-cloudimg")
	build := exec.Command("go", "build", "-o", plugin, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "PACKER_") || strings.HasPrefix(k, "PKR_VAR_") || k == "CHECKPOINT_DISABLE" {
			continue
		}
		p.env = append(p.env, kv)
	}
	p.env = append(p.env,
		"PACKER_PLUGIN_PATH="+filepath.Join(p.Work, "plugins"),
		"PACKER_CONFIG_DIR="+filepath.Join(p.Work, "config"),
		"PACKER_CACHE_DIR="+filepath.Join(p.Work, "cache"),
		"CHECKPOINT_DISABLE=1",
	)
	p.env = append(p.env, extraEnv...)
	if out, err := p.Run("plugins", "install", "--path", plugin, "github.com/packer-cloudimg/cloudimg"); err != nil {
		t.Fatalf("plugins install: %v\n%s", err, out)
	}
	return p
}

// Run runs packer with args in the test's package directory and returns
// its combined output and error.
func (p *Packer) Run(args ...string) (string, error) {
	cmd := exec.Command(p.bin, args...)
	cmd.Env = p.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// Cosign returns the real cosign for the tests that check signatures with
// it: CLOUDIMG_COSIGN, else tools/bin/cosign of the checkout at root
// (relative to the test's package directory, e.g. "../.."), which `make
// tools` builds. It skips the test when neither exists, unless
// CLOUDIMG_REQUIRE_COSIGN=1 (as `make unit` sets), which fails it instead.
func Cosign(t *testing.T, root string) string {
	t.Helper()
	if p := os.Getenv("CLOUDIMG_COSIGN"); p != "" {
		return p
	}
	p, err := filepath.Abs(filepath.Join(root, "tools", "bin", "cosign"))
	if err == nil {
		if _, err = os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CLOUDIMG_REQUIRE_COSIGN") == "1" {
		t.Fatalf("cosign not found (%v): run `make tools` or set CLOUDIMG_COSIGN", err)
	}
	t.Skipf("cosign not found (%v): run `make tools` or set CLOUDIMG_COSIGN", err)
	return ""
}
