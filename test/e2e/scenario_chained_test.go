//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// chainedMetadata is the part of a chained build's metadata this test
// reads: the source, with the base image named.
type chainedMetadata struct {
	Source *struct {
		URL       string `json:"url"`
		Checksum  string `json:"checksum"`
		ImageName string `json:"image_name"`
		SHA256    string `json:"sha256"`
		BuildID   string `json:"build_id"`
		Metadata  string `json:"metadata"`
	} `json:"source"`
	Build struct {
		PackerRunUUID string `json:"packer_run_uuid"`
	} `json:"build"`
}

func readChainedMetadata(t testing.TB, path string) *chainedMetadata {
	t.Helper()
	var m chainedMetadata
	if err := json.Unmarshal(mustReadFile(t, path), &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &m
}

// testChained is TestScenarioBasic's chained build (issue #18): a variant
// built from the basic image through the cloudimg-repository data source,
// filed in the same repository under the same name and labels with
// keep_last = 1. It checks that the build ran on the base (its marker is
// there: a provisioner tests it), that the variant's metadata names the base
// (path, sha256, the base build's id), and that retention left exactly the
// variant of that name, the base's files and directory gone, and a
// SHA256SUMS that `sha256sum -c` accepts.
func testChained(t *testing.T, tm *timings, base *basicBuild, cell string) {
	baseImage := base.output
	baseSum := fileSHA256(t, baseImage)
	baseMeta := readChainedMetadata(t, baseImage+".metadata.json")
	if baseMeta.Build.PackerRunUUID == "" {
		t.Fatalf("the base's metadata has no build.packer_run_uuid")
	}

	var baseProvenance string
	if base.keys != nil {
		// verify_key refuses an unsigned base and a base signed by another
		// key, at the data source, before any VM (issue #23).
		start := time.Now()
		// A hard-linked copy (same file system: under the run's work
		// directory) without the image's signature.
		unsigned := filepath.Join(testDir(t), "repository")
		if out, err := exec.Command("cp", "-al", base.repo, unsigned).CombinedOutput(); err != nil {
			t.Fatalf("cp -al: %v\n%s", err, out)
		}
		if err := os.Remove(filepath.Join(unsigned, base.rel+".sigstore.json")); err != nil {
			t.Fatal(err)
		}
		testChainedRefused(t, unsigned, []string{base.keys.pub}, "it is not signed", base.rel+".sigstore.json not found", "sha256:"+base.keys.fingerprint)
		testChainedRefused(t, base.repo, []string{base.other.pub}, "does not verify with the key sha256:"+base.other.fingerprint+" ("+base.other.pub+")")
		tm.since("two refused chained builds", start)
		// keep_last removes the base: its provenance is kept for later.
		baseProvenance = filepath.Join(t.TempDir(), "base.provenance.sigstore.json")
		writeFile(t, baseProvenance, mustReadFile(t, baseImage+".provenance.sigstore.json"), 0o644)
	}

	dir := copyScenario(t, "chained", testDir(t))
	imageID := "variant-" + randHex(4)
	vars := map[string]string{
		"repository":    base.repo,
		"cell":          cell,
		"image_id":      imageID,
		"base_token":    base.token,
		"variant_token": "e2e-" + randHex(16),
	}
	var env []string
	if base.keys != nil {
		// Rotation: the other key first; the base verifies with the
		// second. The variant is signed with the key from the environment
		// (env://) and COSIGN_PASSWORD.
		keys, _ := json.Marshal([]string{base.other.pub, base.keys.pub})
		vars["verify_key"] = string(keys)
		vars["key_file"] = "env://CLOUDIMG_E2E_COSIGN_KEY"
		env = append(env, "CLOUDIMG_E2E_COSIGN_KEY="+string(mustReadFile(t, base.keys.key)), "COSIGN_PASSWORD="+base.keys.password)
	}
	start := time.Now()
	run := startPackerEnv(t, dir, env, append([]string{"build"}, buildArgs(vars, "variant.pkr.hcl")...)...).Wait()
	run.mustSucceed(t)
	tm.since("chained build", start)

	rel := imageID + "/basic.qcow2"
	variant := filepath.Join(base.repo, rel)
	m := readChainedMetadata(t, variant+".metadata.json")
	if s := m.Source; s == nil {
		t.Errorf("variant metadata: no source")
	} else {
		if s.URL != baseImage || s.Checksum != "sha256:"+baseSum {
			t.Errorf("variant metadata: source url %q checksum %q, want the base %s sha256:%s (the data source's outputs)", s.URL, s.Checksum, baseImage, baseSum)
		}
		if s.ImageName != "basic" || s.SHA256 != baseSum || s.BuildID != baseMeta.Build.PackerRunUUID || s.Metadata != baseImage+".metadata.json" {
			t.Errorf("variant metadata: source %+v, want the base named: image_name basic, sha256 %s, build_id %s, metadata %s.metadata.json", *s, baseSum, baseMeta.Build.PackerRunUUID, baseImage)
		}
	}
	if m.Build.PackerRunUUID == "" || m.Build.PackerRunUUID == baseMeta.Build.PackerRunUUID {
		t.Errorf("variant metadata: build.packer_run_uuid %q, want one of its own (the base's is %s)", m.Build.PackerRunUUID, baseMeta.Build.PackerRunUUID)
	}

	// keep_last = 1: the base is gone, files, directory, entry and line.
	if !strings.Contains(run.Output, `keep_last = 1: removed the older image `+base.rel+` of "basic"`) {
		t.Errorf("packer output does not report the base's removal")
	}
	if _, err := os.Stat(filepath.Dir(baseImage)); !os.IsNotExist(err) {
		t.Errorf("the base's directory %s is still there (%v)", filepath.Dir(baseImage), err)
	}
	idx := checkRepository(t, base.repo, rel)
	var named []string
	for _, e := range idx.Images {
		if e.Name == "basic" {
			named = append(named, e.Path)
		}
	}
	if len(named) != 1 || named[0] != rel || idx.Latest["basic"] != rel {
		t.Errorf("index.json: images named basic %v, latest %q; want only %s", named, idx.Latest["basic"], rel)
	}
	sums := string(mustReadFile(t, filepath.Join(base.repo, "SHA256SUMS")))
	if baseDir := filepath.Dir(base.rel) + "/"; strings.Contains(sums, "  "+baseDir) {
		t.Errorf("SHA256SUMS still lists files of the base's directory %s:\n%s", baseDir, sums)
	}

	if base.keys != nil {
		start := time.Now()
		// The data source and the builder verified the base.
		if !strings.Contains(run.Output, "Source image signed by the key sha256:"+base.keys.fingerprint) {
			t.Errorf("the chained build's output does not say the builder verified the base with %s", base.keys.fingerprint)
		}
		checkSigned(t, variant, base.repo, rel, base.keys, base.other)
		// The base's provenance is another build's: not the variant's.
		args := append(append([]string{"verify-blob-attestation"}, cosignVerifyArgs(base.keys.pub, baseProvenance)...),
			"--type", "slsaprovenance1", "--digest", fileSHA256(t, variant), "--digestAlg", "sha256")
		if out, err := runCosign(t, filepath.Dir(variant), nil, args...); err == nil {
			t.Errorf("cosign verified the base build's provenance for the variant:\n%s", out)
		}
		// The password: in no log (PACKER_LOG=1), output, document or bundle.
		checkSecretAbsent(t, base.keys.password, base.dir, dir, filepath.Dir(base.keys.key))
		tm.since("chained signature checks", start)
	}
}
