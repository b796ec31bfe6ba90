//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// testRegistryScenario is TestScenarioBasic's registry subtest (issue #22):
// the basic image goes to a real registry (CNCF Distribution with htpasswd
// and TLS from a CA the test made) through cloudimg-oci in push-only runs,
// and independent clients judge what arrived:
//   - containerdisk (credentials from DOCKER_CONFIG): skopeo copies it; the
//     layer's file has the metadata's sha256, owner 107:107, and the
//     config's diff_ids match; oras lists the SBOM and provenance
//     referrers; pushing again sends nothing and gives the same digest;
//   - artifact (username/password, through HTTPS_PROXY): oras pulls the
//     same bytes; the password is in no file of the test directory
//     (PACKER_LOG=1 logs included);
//   - multi-arch: the basic image and an arm64 image of the same name and
//     run (a small qcow2 with metadata made here, never booted) end under
//     one tag as an OCI index naming both platforms;
//   - faults through a proxy: the connection cut mid-disk and a stalled
//     registry each fail the push within 30 s naming the registry, the old
//     tag and the local image untouched, and the push-only rerun completes;
//     a wrong password and an unknown CA fail naming the registry and what
//     to do; keep_last against a
//     registry that allows no deletion fails with nothing removed;
//   - the containerdisk is signed in the registry: the real cosign's
//     verify and verify-attestation pass with the key, not with another;
//   - a variant is built from oci:// with verify_key in a second Packer run
//     with its own cache and work directory while the base's directory is
//     moved away (an unsigned base is refused first); its metadata names
//     the base, and it is pushed in the same chain.
func testRegistryScenario(t *testing.T, tm *timings, base *basicBuild) {
	reg := startRegistry(t, registryOpts{Delete: true})
	dir := copyScenario(t, "registry", testDir(t))
	baseMeta := base.output + ".metadata.json"
	baseSum := base.meta.Image.Checksums["sha256"]
	dockerEnv := []string{"DOCKER_CONFIG=" + reg.DockerConfigDir(t)}
	start := time.Now()

	push := func(t *testing.T, r *testRegistry, env []string, repo string, vars map[string]string, metadata ...string) *packerRun {
		t.Helper()
		files, _ := json.Marshal(metadata)
		v := map[string]string{"repository": r.Ref(repo, ""), "ca_file": r.CAFile, "metadata_files": string(files)}
		for k, val := range vars {
			v[k] = val
		}
		return startPackerEnv(t, dir, env, append([]string{"build"}, buildArgs(v, "push.pkr.hcl")...)...).Wait()
	}

	// The containerdisk is signed in the registry with the base's key.
	signEnv := append([]string{"PKR_VAR_key_password=" + base.keys.password}, dockerEnv...)
	signVars := map[string]string{"tags": `["v1"]`, "key_file": base.keys.key}
	t.Run("containerdisk", func(t *testing.T) {
		run := push(t, reg, signEnv, "team/nodes", signVars, baseMeta)
		run.mustSucceed(t)
		ref := reg.Ref("team/nodes", "v1")
		cd := checkContainerDisk(t, reg, ref, "basic.qcow2", baseSum)
		checkReferrers(t, reg, ref, "application/vnd.cyclonedx+json", "application/vnd.in-toto+json", "application/vnd.dev.sigstore.bundle.v0.3+json")
		checkRegistrySigned(t, reg, ref, base.keys, base.other)
		checkSecretAbsent(t, base.keys.password, dir)
		again := push(t, reg, signEnv, "team/nodes", signVars, baseMeta)
		again.mustSucceed(t)
		// The disk is not sent again (the signatures are new: ECDSA
		// signatures differ each time).
		if !strings.Contains(again.Output, "the registry has it already, not sent again") {
			t.Errorf("the second push of the same image sent the disk again:\n%s", tailLines(again.Output, 10))
		}
		if d, err := orasResolve(t, reg, ref); err != nil || d != cd.ManifestDigest {
			t.Errorf("after the second push v1 is %s (%v), want the same manifest %s", d, err, cd.ManifestDigest)
		}
		if !strings.Contains(run.Output, "@"+cd.ManifestDigest) {
			t.Errorf("packer output does not name the pushed manifest %s", cd.ManifestDigest)
		}
	})

	t.Run("artifact", func(t *testing.T) {
		// Through an HTTPS proxy (HTTPS_PROXY), by a name only the proxy
		// reaches.
		cp := startConnectProxy(t, reg.Host)
		via := reg.viaConnectProxy(cp)
		// The password as a sensitive variable from the environment, never
		// on Packer's command line.
		env := append([]string{"PKR_VAR_password=" + reg.Password}, via.ClientEnv...)
		run := push(t, via, env, "team/artifacts", map[string]string{
			"tags": `["v1"]`, "layout": "artifact", "username": reg.User,
		}, baseMeta)
		run.mustSucceed(t)
		if len(cp.Tunnels()) == 0 {
			t.Errorf("the push did not go through HTTPS_PROXY %s", cp.URL)
		}
		ref := reg.Ref("team/artifacts", "v1")
		out := t.TempDir()
		if err := orasPull(t, reg, ref, out); err != nil {
			t.Fatalf("oras pull %s: %v", ref, err)
		}
		if got := fileSHA256(t, filepath.Join(out, "basic.qcow2")); got != baseSum {
			t.Errorf("oras pulled basic.qcow2 with sha256 %s, want %s", got, baseSum)
		}
		checkReferrers(t, reg, ref, "application/vnd.cyclonedx+json", "application/vnd.in-toto+json")
		checkSecretAbsent(t, reg.Password, dir)
	})

	// A registry that serves the referrers API gets the documents through
	// it: no referrers tag (sha256-…) appears.
	t.Run("referrers-api", func(t *testing.T) {
		api := startReferrersRegistry(t)
		push(t, api, nil, "team/nodes", map[string]string{"tags": `["v1"]`, "layout": "artifact", "plain_http": "true"}, baseMeta).mustSucceed(t)
		checkReferrers(t, api, api.Ref("team/nodes", "v1"), "application/vnd.cyclonedx+json", "application/vnd.in-toto+json")
		tags, err := orasTags(t, api, "team/nodes")
		if err != nil {
			t.Fatal(err)
		}
		for _, tag := range tags {
			if strings.HasPrefix(tag, "sha256-") {
				t.Errorf("the referrers went to the tag schema (%s) although the registry serves the referrers API", tag)
			}
		}
	})

	// An arm64 image of the same name and run, never booted: a small qcow2
	// and a metadata document saying so.
	armMeta := fakeImage(t, dir, base, "arm64", "basic-arm64.qcow2", 0)
	t.Run("multiarch", func(t *testing.T) {
		push(t, reg, dockerEnv, "team/multi", map[string]string{"tags": `["v1"]`, "layout": "artifact"}, baseMeta, armMeta).mustSucceed(t)
		raw, err := orasManifest(t, reg, reg.Ref("team/multi", "v1"))
		if err != nil {
			t.Fatal(err)
		}
		var idx struct {
			MediaType string `json:"mediaType"`
			Manifests []struct {
				Digest   string `json:"digest"`
				Platform struct {
					OS           string `json:"os"`
					Architecture string `json:"architecture"`
				} `json:"platform"`
			} `json:"manifests"`
		}
		if err := json.Unmarshal(raw, &idx); err != nil {
			t.Fatalf("v1: %v: %s", err, raw)
		}
		var platforms []string
		for _, m := range idx.Manifests {
			platforms = append(platforms, m.Platform.OS+"/"+m.Platform.Architecture)
			// Each child, as a client sees it, is the image of its arch.
			child, err := orasManifest(t, reg, reg.Ref("team/multi", m.Digest))
			if err != nil || !strings.Contains(string(child), `"io.github.packer-cloudimg.image.arch":"`+m.Platform.Architecture+`"`) {
				t.Errorf("child %s (%s): %v %s", m.Digest, m.Platform.Architecture, err, child)
			}
		}
		if idx.MediaType != "application/vnd.oci.image.index.v1+json" || strings.Join(platforms, ",") != "linux/amd64,linux/arm64" {
			t.Errorf("v1 is %s of %v, want an OCI index of linux/amd64 and linux/arm64", idx.MediaType, platforms)
		}
	})

	t.Run("faults", func(t *testing.T) {
		imageBefore := fileSHA256(t, base.output)
		metaBefore := fileSHA256(t, baseMeta)
		// The tag "stable" first names the small arm64 image.
		push(t, reg, dockerEnv, "team/faults", map[string]string{"tags": `["stable"]`, "layout": "artifact"}, armMeta).mustSucceed(t)
		old, err := orasResolve(t, reg, reg.Ref("team/faults", "stable"))
		if err != nil {
			t.Fatal(err)
		}
		size := base.meta.Image.SizeBytes
		for _, kind := range []faultKind{faultCut, faultStall} {
			t.Run(kind.String(), func(t *testing.T) {
				proxy := startFaultProxy(t, reg.Host, faultMode{Kind: kind, After: size / 2})
				via := reg.via(proxy.Addr)
				env := []string{"DOCKER_CONFIG=" + reg.DockerConfigDir(t, proxy.Addr)}
				p := startPackerEnv(t, dir, env, append([]string{"build"}, buildArgs(map[string]string{
					"repository": via.Ref("team/faults", ""), "ca_file": reg.CAFile, "tags": `["stable"]`, "layout": "artifact",
					"metadata_files": fmt.Sprintf("[%q]", baseMeta),
				}, "push.pkr.hcl")...)...)
				var tripped time.Time
				select {
				case <-proxy.Tripped():
					tripped = time.Now()
				case <-p.Done():
					t.Fatalf("the push ended before the fault (%d bytes sent)", proxy.Sent())
				}
				run := p.Wait()
				took := time.Since(tripped)
				run.mustFail(t, "registry "+proxy.Addr, "repository team/faults")
				if took > 30*time.Second {
					t.Errorf("the push failed %s after the fault, want within 30 s", took.Round(time.Second))
				}
				proxy.Heal()
				if d, err := orasResolve(t, reg, reg.Ref("team/faults", "stable")); err != nil || d != old {
					t.Errorf("after the %s push, stable is %s (%v), want the old %s", kind, d, err, old)
				}
			})
		}
		if fileSHA256(t, base.output) != imageBefore || fileSHA256(t, baseMeta) != metaBefore {
			t.Errorf("the local image or its metadata changed during the failed pushes")
		}
		// The push-only rerun completes.
		push(t, reg, dockerEnv, "team/faults", map[string]string{"tags": `["stable"]`, "layout": "artifact"}, baseMeta).mustSucceed(t)
		if d, err := orasResolve(t, reg, reg.Ref("team/faults", "stable")); err != nil || d == old {
			t.Errorf("after the rerun stable is %s (%v), want the basic image, not the old %s", d, err, old)
		}

		t.Run("unknown-authority", func(t *testing.T) {
			v := map[string]string{"repository": reg.Ref("team/faults", ""), "ca_file": "", "layout": "artifact",
				"metadata_files": fmt.Sprintf("[%q]", armMeta)}
			run := startPackerEnv(t, dir, dockerEnv, append([]string{"build"}, buildArgs(v, "push.pkr.hcl")...)...).Wait()
			run.mustFail(t, "registry "+reg.Host, "unknown authority", "set ca_file")
		})

		t.Run("wrong-password", func(t *testing.T) {
			wrong := "pw-wrong-" + randHex(12)
			run := push(t, reg, []string{"PKR_VAR_password=" + wrong}, "team/faults", map[string]string{"layout": "artifact", "username": reg.User}, armMeta)
			run.mustFail(t, "registry "+reg.Host, "refused the credentials")
			checkSecretAbsent(t, wrong, dir)
		})

		t.Run("keep_last-delete-refused", func(t *testing.T) {
			ro := startRegistry(t, registryOpts{Delete: false})
			env := []string{"DOCKER_CONFIG=" + ro.DockerConfigDir(t)}
			older := fakeImage(t, t.TempDir(), base, "amd64", "older.qcow2", -time.Hour)
			push(t, ro, env, "team/nodes", map[string]string{"layout": "artifact"}, older).mustSucceed(t)
			run := push(t, ro, env, "team/nodes", map[string]string{"layout": "artifact", "keep_last": "1"}, baseMeta)
			run.mustFail(t, "registry "+ro.Host, "does not allow deleting", "nothing was removed")
			tags, err := orasTags(t, ro, "team/nodes")
			if err != nil {
				t.Fatal(err)
			}
			if n := len(slices.DeleteFunc(tags, func(s string) bool { return strings.HasPrefix(s, "sha256-") })); n != 2 {
				t.Errorf("after the refused keep_last the repository has tags %v, want both build tags", tags)
			}
		})
	})
	tm.since("registry pushes", start)

	t.Run("variant-from-oci", func(t *testing.T) {
		other := filepath.Join(testDir(t), "other-machine")
		if err := os.MkdirAll(other, 0o755); err != nil {
			t.Fatal(err)
		}
		copyScenario(t, "registry", other)
		// No way back to the first run's files while the variant builds.
		hidden := base.repo + ".hidden"
		if err := os.Rename(base.repo, hidden); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := os.Rename(hidden, base.repo); err != nil {
				t.Fatalf("restoring %s: %v", base.repo, err)
			}
		}()
		cache := filepath.Join(other, "packer_cache")
		env := append([]string{"PACKER_CACHE_DIR=" + cache}, dockerEnv...)
		begin := time.Now()
		vars := map[string]string{
			"registry_repository": reg.Ref("team/artifacts", ""), "ca_file": reg.CAFile,
			"output_directory": filepath.Join(other, "output"), "base_token": base.token,
			"verify_key": fmt.Sprintf("[%q]", base.keys.pub),
		}
		// The artifact push is not signed: verify_key refuses it before any
		// VM starts.
		refused := startPackerEnv(t, other, env, append([]string{"build"}, buildArgs(vars, "variant.pkr.hcl")...)...).Wait()
		refused.mustFail(t, "refused by verify_key", "has no signature", base.keys.fingerprint)
		// The signed containerdisk, with the old key and the current one (a
		// rotation).
		vars["registry_repository"] = reg.Ref("team/nodes", "")
		vars["verify_key"] = fmt.Sprintf("[%q, %q]", base.other.pub, base.keys.pub)
		run := startPackerEnv(t, other, env, append([]string{"build"}, buildArgs(vars, "variant.pkr.hcl")...)...).Wait()
		run.mustSucceed(t)
		if !strings.Contains(run.Output, "is signed with the key "+base.keys.fingerprint) {
			t.Errorf("packer output does not say the builder verified the base with %s", base.keys.fingerprint)
		}
		tm.since("variant build from oci://", begin)
		if !strings.Contains(run.Output, "Pulling oci://"+reg.Ref("team/nodes", "")+"@sha256:") || !strings.Contains(run.Output, cache) {
			t.Errorf("packer output does not show the pull into the run's own cache %s", cache)
		}
		variant := filepath.Join(other, "output", "variant.qcow2")
		m := readChainedMetadata(t, variant+".metadata.json")
		s := m.Source
		if s == nil || !strings.HasPrefix(s.URL, "oci://"+reg.Ref("team/nodes", "")+"@sha256:") || s.Checksum != "sha256:"+baseSum ||
			s.ImageName != "basic" || s.SHA256 != baseSum || s.BuildID == "" {
			t.Errorf("variant metadata: source %+v, want the base named: oci://…@sha256:…, sha256:%s, image_name basic, its build id", s, baseSum)
		}
		ref := reg.Ref("team/nodes", "variant")
		out := t.TempDir()
		if err := orasPull(t, reg, ref, out); err != nil {
			t.Fatalf("oras pull %s: %v", ref, err)
		}
		if got, want := fileSHA256(t, filepath.Join(out, "variant.qcow2")), fileSHA256(t, variant); got != want {
			t.Errorf("the pushed variant has sha256 %s, the built one %s", got, want)
		}
	})
}

// checkRegistrySigned runs the real cosign on ref: verify and
// verify-attestation (slsaprovenance1, cyclonedx) pass with keys, offline
// (--insecure-ignore-tlog), trusting the registry's CA (SSL_CERT_FILE) with
// its credentials (DOCKER_CONFIG); verify with other fails.
func checkRegistrySigned(t *testing.T, reg *testRegistry, ref string, keys, other *cosignKeys) {
	t.Helper()
	env := []string{"SSL_CERT_FILE=" + reg.CAFile, "DOCKER_CONFIG=" + reg.DockerConfigDir(t)}
	dir := t.TempDir()
	for _, args := range [][]string{
		{"verify", "--key", keys.pub},
		{"verify-attestation", "--key", keys.pub, "--type", "slsaprovenance1"},
		{"verify-attestation", "--key", keys.pub, "--type", "cyclonedx"},
	} {
		if out, err := runCosign(t, dir, env, append(args, "--insecure-ignore-tlog=true", ref)...); err != nil {
			t.Errorf("cosign %s %s: %v\n%s", strings.Join(args, " "), ref, err, out)
		}
	}
	if out, err := runCosign(t, dir, env, "verify", "--key", other.pub, "--insecure-ignore-tlog=true", ref); err == nil {
		t.Errorf("cosign verify with the wrong key passed:\n%s", out)
	}
}

// checkReferrers fails the test unless `oras discover ref` lists a
// referrer of each artifact type.
func checkReferrers(t *testing.T, reg *testRegistry, ref string, types ...string) {
	t.Helper()
	refs, err := orasDiscover(t, reg, ref)
	if err != nil {
		t.Fatalf("oras discover %s: %v", ref, err)
	}
	var have []string
	for _, r := range refs {
		have = append(have, r.ArtifactType)
	}
	for _, want := range types {
		if !slices.Contains(have, want) {
			t.Errorf("oras discover %s: artifact types %v, want %s among them", ref, have, want)
		}
	}
}

// fakeImage writes, in dir, a small qcow2 named file and a metadata
// document that describes it as an image of the basic build's name, labels
// and run for arch, finished shift after the basic image; it returns the
// metadata's path. Such an image is only ever pushed, never booted.
func fakeImage(t *testing.T, dir string, base *basicBuild, arch, file string, shift time.Duration) string {
	t.Helper()
	img := filepath.Join(dir, file)
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", img, "16M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	var doc map[string]any
	if err := json.Unmarshal(mustReadFile(t, base.output+".metadata.json"), &doc); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	image := doc["image"].(map[string]any)
	image["arch"], image["path"], image["size_bytes"] = arch, file, st.Size()
	image["checksums"] = map[string]any{"sha256": fileSHA256(t, img)}
	build := doc["build"].(map[string]any)
	finished, err := time.Parse(time.RFC3339, build["finished_at"].(string))
	if err != nil {
		t.Fatal(err)
	}
	build["finished_at"] = finished.Add(shift).UTC().Format(time.RFC3339)
	delete(doc, "sidecars")
	b, _ := json.MarshalIndent(doc, "", "  ")
	path := img + ".metadata.json"
	writeFile(t, path, b, 0o644)
	return path
}
