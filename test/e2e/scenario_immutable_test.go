//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// e2edPostinst is the postinst of the e2ed package that the builds install:
// like chrony's, it creates a system user and group and registers a
// dpkg-statoverride owned by them. If the reset removed the wrong accounts,
// dpkg refuses every later install ("unknown system user … in statoverride
// file").
const e2edPostinst = `#!/bin/sh
set -e
if [ "$1" = configure ]; then
	adduser --system --group --quiet --no-create-home --home /nonexistent _e2ed
	mkdir -p /var/lib/e2ed
	if ! dpkg-statoverride --list /var/lib/e2ed >/dev/null; then
		dpkg-statoverride --update --add _e2ed _e2ed 0750 /var/lib/e2ed
	fi
fi
`

// e2edExtraPostinst is the postinst of the second package, installed in the
// booted output: it needs the system user of the first.
const e2edExtraPostinst = `#!/bin/sh
set -e
if [ "$1" = configure ]; then
	install -d -o _e2ed -g _e2ed -m 0750 /var/lib/e2ed/extra
fi
`

// statoverridesResolveScript prints every owner or group of
// `dpkg-statoverride --list` that does not resolve; no output means all do.
const statoverridesResolveScript = `
dpkg-statoverride --list | while read -r owner group mode path; do
	case "$owner" in \#*) ;; *) getent passwd "$owner" >/dev/null || echo "owner $owner of $path does not resolve" ;; esac
	case "$group" in \#*) ;; *) getent group "$group" >/dev/null || echo "group $group of $path does not resolve" ;; esac
done
`

// TestScenarioImmutableNode builds two images (production, development) in
// parallel from one dynamic source block, both into one directory of the
// repository. Ansible (use_proxy = false, a variable file per source)
// installs a local .deb whose postinst creates a system user and a
// dpkg-statoverride. Both outputs are then booted at once: the system user
// and its group survived the reset, every statoverride resolves, and dpkg
// installs a second local package that uses the user. The repository lists
// both images with their stage label, and latest has both names.
func TestScenarioImmutableNode(t *testing.T) {
	tm := newTimings(t)
	img := testImage(t, debian13)
	srcSum := testImageSHA256(t, debian13)
	dir := copyScenario(t, "immutable-node", testDir(t))

	debs := filepath.Join(dir, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		t.Fatal(err)
	}
	deb := buildDeb(t, debs, "e2ed", "adduser", e2edPostinst)
	extraDeb := buildDeb(t, debs, "e2ed-extra", "e2ed", e2edExtraPostinst)

	repo := filepath.Join(dir, "repository")
	imageID := "node-" + randHex(4)
	vars := map[string]string{
		"iso_url":      img,
		"iso_checksum": "sha256:" + srcSum,
		"repository":   repo,
		"image_id":     imageID,
		"deb_path":     deb,
	}
	// The builds get a TMPDIR of their own, to check that they leave
	// nothing there: no lock files, no temporary directory, and no copy of
	// the build's private key from the Ansible provisioner (use_proxy =
	// false makes it write one unless the builder names a key file).
	tmp := ownTempDir(t)
	start := time.Now()
	startPackerEnv(t, dir, []string{"TMPDIR=" + tmp}, append([]string{"build"}, buildArgs(vars, "build.pkr.hcl")...)...).Wait().mustSucceed(t)
	tm.since("build (2 in parallel)", start)
	checkNothingInTempDir(t, tmp)

	stages := []string{"production", "development"}
	rels := make([]string, len(stages))
	for i, s := range stages {
		rels[i] = imageID + "/node-" + s + ".qcow2"
	}

	// Host side.
	for i, s := range stages {
		m := checkMetadata(t, filepath.Join(repo, rels[i]), srcSum)
		if m.Labels["stage"] != s {
			t.Errorf("metadata of %s: labels %v, want stage=%s", rels[i], m.Labels, s)
		}
		if m.Image.Name != s {
			t.Errorf("metadata of %s: image.name %q, want the source name %q", rels[i], m.Image.Name, s)
		}
		if !m.hasPackage("e2ed") {
			t.Errorf("metadata of %s: the guest's package list has no e2ed (facts collected before provisioning?)", rels[i])
		}
	}
	idx := checkRepository(t, repo, rels...)
	for i, s := range stages {
		if e := idx.entry(rels[i]); e != nil {
			if e.Name != s {
				t.Errorf("index.json: %s has name %q, want the source name %q", rels[i], e.Name, s)
			}
			if e.Labels["stage"] != s {
				t.Errorf("index.json: %s has labels %v, want stage=%s", rels[i], e.Labels, s)
			}
		}
		if idx.Latest[s] != rels[i] {
			t.Errorf("index.json: latest[%s] = %q, want %q (latest: %v)", s, idx.Latest[s], rels[i], idx.Latest)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Guest side: both outputs at once.
	extra := mustReadFile(t, extraDeb)
	start = time.Now()
	bootOutputs(t, []vmOptions{{User: "prodops"}, {User: "devops"}},
		func(i int) string { return filepath.Join(repo, rels[i]) },
		func(t *testing.T, i int, v *vm) {
			stage := stages[i]
			checkFirstBoot(t, v)
			if got := strings.TrimSpace(v.MustRead("cat /etc/e2e-stage")); got != stage {
				t.Errorf("/etc/e2e-stage: %q, want %q (from var-%s.yaml)", got, stage, stage)
			}
			checkBuildUserGone(t, v)

			// The package's system user and group survived the reset.
			pw := strings.Split(strings.TrimSpace(v.MustRead("getent passwd _e2ed")), ":")
			gr := strings.Split(strings.TrimSpace(v.MustRead("getent group _e2ed")), ":")
			if len(pw) < 4 || len(gr) < 3 || pw[3] != gr[2] {
				t.Errorf("_e2ed: passwd %q, group %q: the user's primary group is not _e2ed", pw, gr)
			}
			if got := strings.TrimSpace(v.MustRead("sudo -n grep -c '^_e2ed:' /etc/shadow || true")); got != "1" {
				t.Errorf("_e2ed: %s lines in /etc/shadow, want 1", got)
			}
			if got := strings.TrimSpace(v.MustRead("stat -c %U:%G:%a /var/lib/e2ed")); got != "_e2ed:_e2ed:750" {
				t.Errorf("/var/lib/e2ed: %s, want _e2ed:_e2ed:750", got)
			}

			// Every statoverride resolves, and dpkg still installs packages.
			list := v.MustRead("dpkg-statoverride --list")
			if !regexp.MustCompile(`(?m)^_e2ed _e2ed 0?750 /var/lib/e2ed$`).MatchString(list) {
				t.Errorf("dpkg-statoverride --list has no entry for /var/lib/e2ed:\n%s", list)
			}
			if out := strings.TrimSpace(guestScript(t, v, statoverridesResolveScript)); out != "" {
				t.Errorf("dpkg-statoverride entries that do not resolve:\n%s\nlist:\n%s", out, list)
			}
			upload(t, v, extra, "/tmp/e2ed-extra.deb")
			if out, exit, err := v.Run("sudo -n dpkg -i /tmp/e2ed-extra.deb 2>&1"); err != nil || exit != 0 {
				t.Errorf("sudo dpkg -i e2ed-extra.deb in the booted image: exit %d, err %v\n%s", exit, err, out)
			} else if got := strings.TrimSpace(v.MustRead("sudo -n stat -c %U:%G /var/lib/e2ed/extra")); got != "_e2ed:_e2ed" {
				t.Errorf("/var/lib/e2ed/extra: %s, want _e2ed:_e2ed", got)
			}
		})
	tm.since("two boots", start)
}
