//go:build e2e

package e2e

import (
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/provenance"
)

// TestScenarioBasic builds one image through the whole plugin (builder, a
// shell provisioner writing a marker and installing a probe package, the
// reset, the metadata post-processor with a repository) on Debian 12,
// checks the metadata, the SBOM (which lists the probe with its version),
// the provenance and the repository on the host, then boots the output twice at once, each with
// a seed of its own (user, key, instance-id, hostname, MAC), and checks that
// each boot is a cloud-init first boot of a clean image: the provisioned
// marker is there, the build user and its key are not, and machine-id and
// SSH host keys differ between the two. Then the subtest chained builds a
// variant from the image through the repository data source (testChained).
func TestScenarioBasic(t *testing.T) {
	tm := newTimings(t)
	// The image is signed with a key pair cosign makes (issue #23); a
	// second pair is the wrong key.
	keyDir := testDir(t)
	team, other := newCosignKeys(t, keyDir, "team"), newCosignKeys(t, keyDir, "other")
	built := buildBasicSigned(t, tm, debian12, "", team, other)
	output, token := built.output, built.token

	// Guest side: two first boots of the output, side by side.
	type result struct {
		machineID string
		hostKey   ssh.PublicKey
	}
	var mu sync.Mutex
	results := map[string]result{}
	start := time.Now()
	bootOutputs(t, []vmOptions{{User: "alice"}, {User: "bob"}},
		func(int) string { return output },
		func(t *testing.T, _ int, v *vm) {
			checkFirstBoot(t, v)

			if got := strings.TrimSpace(v.MustRead("cat /etc/cloudimg-e2e-marker")); got != token {
				t.Errorf("marker file: %q, want the build's token %q", got, token)
			}

			checkBuildUserGone(t, v)
			checkNoBuildTraces(t, v, built.traces)

			// No key of the build anywhere: every authorized_keys file holds
			// the new seed's key and no other. cloud-init makes root's file
			// too (disable_root; it holds the datasource's keys, none here),
			// so root's may exist, but no other.
			pub := strings.Fields(string(mustReadFile(t, v.KeyPath+".pub")))
			newKey := pub[0] + " " + pub[1]
			userFile := "/home/" + v.User + "/.ssh/authorized_keys"
			files := strings.Fields(v.MustRead(`sudo -n find / -xdev -type f \( -name authorized_keys -o -name authorized_keys2 \) -print`))
			sawUserFile := false
			for _, f := range files {
				keys := authorizedKeys(v.MustRead("sudo -n cat " + f))
				switch f {
				case userFile:
					sawUserFile = true
					if len(keys) != 1 || keys[0] != newKey {
						t.Errorf("%s holds %q, want only the new seed's key %s", f, keys, newKey)
					}
				case "/root/.ssh/authorized_keys":
					for _, k := range keys {
						if k != newKey {
							t.Errorf("%s holds a key that is not the new seed's: %s", f, k)
						}
					}
				default:
					t.Errorf("unexpected authorized_keys file %s, holding %q", f, keys)
				}
			}
			if !sawUserFile {
				t.Errorf("no %s (authorized_keys files: %q)", userFile, files)
			}

			mu.Lock()
			results[v.User] = result{machineID: machineID(t, v), hostKey: v.HostKey()}
			mu.Unlock()
		})
	tm.since("two boots", start)

	// The registry's pushes and its variant read the image as it is.
	t.Run("registry", func(t *testing.T) { testRegistryScenario(t, tm, built) })
	// Terraform's loop on a copy of the repository (issue #24), before the
	// chained build removes the image from this one.
	t.Run("terraform", func(t *testing.T) { testTerraform(t, tm, built, string(debian12.orDefault())) })

	// The boots are done with the image: the chained build may remove it.
	t.Run("chained", func(t *testing.T) { testChained(t, tm, built, string(debian12.orDefault())) })

	a, b := results["alice"], results["bob"]
	if a.machineID == "" || b.machineID == "" {
		t.Fatalf("a boot did not get as far as reading /etc/machine-id")
	}
	if a.machineID == b.machineID {
		t.Errorf("both boots of the image have /etc/machine-id %s: the reset did not clear it", a.machineID)
	}
	if sameKey(a.hostKey, b.hostKey) {
		t.Errorf("both boots of the image present the SSH host key %s: the reset did not remove the host keys", ssh.FingerprintSHA256(a.hostKey))
	}
}

// buildHostname is the build VM's host name in the basic scenario: the
// builder's default, packer-<build name>.
const buildHostname = "packer-basic"

// basicBuild is what buildBasic built.
type basicBuild struct {
	keys   *cosignKeys // the key the image is signed with (nil: unsigned)
	other  *cosignKeys // another key pair, which must not verify it
	dir    string      // the test directory Packer ran in (packer.out)
	repo   string      // the image repository
	rel    string      // the image's path inside repo
	output string      // the image
	token  string      // the marker the shell provisioner wrote to /etc/cloudimg-e2e-marker
	meta   *scMetadata // <image>.metadata.json
	run    *packerRun
	traces buildTraces // the build VM's identities, which no clone may carry
}

// buildTraces are the build VM's identities that no clone may carry.
type buildTraces struct {
	instanceID string
	mac        string
	hostname   string
}

// seedSummaryRe finds the builder's account of its seed in Packer's output:
// the build's instance-id and NIC MAC address.
var seedSummaryRe = regexp.MustCompile(`Created the cidata seed \(instance-id ([^,]+), user [^,]+, NIC ([0-9a-f:]{17})\)`)

// buildBasic builds the basic scenario's template from the cell's test
// image, with userData added to the build's seed, and checks the metadata
// and the repository on the host; it stops the test unless all is right.
func buildBasic(t *testing.T, tm *timings, c cell, userData string) *basicBuild {
	t.Helper()
	return buildBasicSigned(t, tm, c, userData, nil, nil)
}

// buildBasicSigned is buildBasic with the image signed with keys (its
// password handed to Packer as PKR_VAR_key_password, a sensitive
// variable) and checked with cosign (checkSigned; other is the wrong key).
func buildBasicSigned(t *testing.T, tm *timings, c cell, userData string, keys, other *cosignKeys) *basicBuild {
	t.Helper()
	img := testImage(t, c)
	srcSum := testImageSHA256(t, c)
	dir := copyScenario(t, "basic", testDir(t))

	repo := filepath.Join(dir, "repository")
	imageID := "basic-" + randHex(4)
	token := "e2e-" + randHex(16)
	probe := makeProbePackage(t, dir)
	vars := map[string]string{
		"probe_deb":    probe.deb,
		"iso_url":      img,
		"iso_checksum": "sha256:" + srcSum,
		"repository":   repo,
		"image_id":     imageID,
		"marker_token": token,
		"cell":         string(c.orDefault()),
		"user_data":    userData,
	}
	var env []string
	if keys != nil {
		vars["key_file"] = keys.key
		env = append(env, "PKR_VAR_key_password="+keys.password)
	}
	start := time.Now()
	run := startPackerEnv(t, dir, env, append([]string{"build"}, buildArgs(vars, "build.pkr.hcl")...)...).Wait()
	run.mustSucceed(t)
	tm.since("build", start)

	rel := imageID + "/basic.qcow2"
	output := filepath.Join(repo, rel)

	// Host side: metadata beside the image, and the repository.
	meta := checkMetadata(t, output, srcSum)
	if meta.Image.Name != "basic" || meta.Image.Path != "basic.qcow2" {
		t.Errorf("metadata: image name %q, path %q; want the source name basic and basic.qcow2 (beside the metadata file)", meta.Image.Name, meta.Image.Path)
	}
	if meta.Labels["scenario"] != "basic" || meta.Labels["cell"] != string(c.orDefault()) {
		t.Errorf("metadata: labels %v, want scenario=basic cell=%s", meta.Labels, c.orDefault())
	}
	if meta.Image.Firmware != "bios" {
		t.Errorf("metadata: image.firmware %q, want bios (the default)", meta.Image.Firmware)
	}
	if !meta.hasPackage("cloud-init") {
		t.Errorf("metadata: the guest's package list has no cloud-init")
	}
	// The builder's seed saved the source image's /etc/hostname and
	// /etc/hosts before cloud-init named the build host in them.
	if meta.Guest != nil && meta.Guest.Reset != nil {
		if h := meta.Guest.Reset.Hostname; h == nil || h.Restore != "saved-copy" || !slices.Contains(h.BuildNames, buildHostname) {
			t.Errorf("metadata: guest.reset.hostname %+v, want the build name %s restored from the saved copy", h, buildHostname)
		}
	}
	// The SBOM lists the package the provisioner installed, as the guest's
	// dpkg knew it.
	checkProbeInSBOM(t, meta.bom, probe, string(c.orDefault()))
	// The template names the cell in provenance_parameters.
	if _, pred, err := provenance.Parse(mustReadFile(t, output+".intoto.json")); err == nil {
		params, _ := pred.GetBuildDefinition().GetExternalParameters().AsMap()["parameters"].(map[string]any)
		if params["cell"] != string(c.orDefault()) {
			t.Errorf("provenance: externalParameters.parameters %v, want cell = %s from provenance_parameters", params, c.orDefault())
		}
	}
	idx := checkRepository(t, repo, rel)
	if e := idx.entry(rel); e != nil {
		kinds := map[string]string{}
		for _, sc := range e.Sidecars {
			kinds[sc.Kind] = sc.Path
		}
		if kinds["metadata"] != rel+".metadata.json" || kinds["sbom-cyclonedx"] != rel+".cdx.json" || kinds["provenance"] != rel+".intoto.json" {
			t.Errorf("index.json: sidecars of %s %+v, want its metadata, SBOM and provenance", rel, e.Sidecars)
		}
		if e.Name != "basic" {
			t.Errorf("index.json: image name %q, want the source name basic", e.Name)
		}
		if e.Labels["scenario"] != "basic" {
			t.Errorf("index.json: labels %v, want scenario=basic", e.Labels)
		}
		if e.Firmware != "bios" {
			t.Errorf("index.json: firmware %q, want bios", e.Firmware)
		}
	}
	if idx.Latest["basic"] != rel {
		t.Errorf("index.json: latest[basic] = %q, want %q", idx.Latest["basic"], rel)
	}
	m := seedSummaryRe.FindStringSubmatch(run.Output)
	if m == nil {
		t.Errorf("packer output has no line matching %q", seedSummaryRe)
	}
	if t.Failed() {
		t.FailNow()
	}
	if keys != nil {
		start := time.Now()
		checkSigned(t, output, repo, rel, keys, other)
		tm.since("signature checks (cosign)", start)
	}
	if t.Failed() {
		t.FailNow()
	}
	traces := buildTraces{instanceID: m[1], mac: m[2], hostname: buildHostname}
	return &basicBuild{keys: keys, other: other, dir: dir, repo: repo, rel: rel, output: output, token: token, meta: meta, run: run, traces: traces}
}
