package provenance

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func input() Input {
	return Input{
		Image:     Image{Name: "node.qcow2", SHA256: strings.Repeat("ab", 32)},
		BuilderID: "packer-cloudimg.kvm",
		ExternalParameters: map[string]any{
			"source": "production", "build": "node", "image_name": "node",
			"labels": map[string]any{"kubernetes_version": "1.31.2"},
		},
		Source:        &Source{URL: "https://user:secret@cloud.debian.org/images/debian-12-genericcloud-amd64.qcow2", Checksum: "sha512:" + strings.Repeat("0f", 64)},
		Template:      &Template{Remote: "https://github.com/example/images.git", Branch: "main", Commit: strings.Repeat("1234567890", 4), Dirty: true},
		PluginModule:  "github.com/packer-cloudimg/packer-plugin-cloudimg",
		PluginVersion: "0.1.0",
		PackerVersion: "1.11.2",
		InvocationID:  "5e2bd4a6-8a0e-4c1b-9d55-2d0d1a7e7f10",
		StartedOn:     time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC),
		FinishedOn:    time.Date(2026, 11, 26, 10, 4, 31, 500, time.UTC),
	}
}

func TestStatement(t *testing.T) {
	b, err := Statement(input())
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join("testdata", "statement.golden.json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("differs from %s (go test -update rewrites it):\n%s", p, b)
	}
	if bytes.Contains(b, []byte("secret")) {
		t.Error("the source URL's credentials are in the statement")
	}
	// Read back with the in-toto types.
	st, pred, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if s := st.GetSubject(); len(s) != 1 || s[0].GetName() != "node.qcow2" || s[0].GetDigest()["sha256"] != strings.Repeat("ab", 32) {
		t.Errorf("subject %v", s)
	}
	deps := map[string]string{}
	for _, d := range pred.GetBuildDefinition().GetResolvedDependencies() {
		deps[d.GetName()] = d.GetUri()
	}
	if deps["source-image"] != "https://cloud.debian.org/images/debian-12-genericcloud-amd64.qcow2" ||
		deps["template"] != "git+https://github.com/example/images.git" ||
		deps["github.com/packer-cloudimg/packer-plugin-cloudimg"] != "pkg:golang/github.com/packer-cloudimg/packer-plugin-cloudimg@v0.1.0" ||
		deps["github.com/hashicorp/packer"] != "pkg:golang/github.com/hashicorp/packer@v1.11.2" {
		t.Errorf("resolved dependencies %v", deps)
	}
	md := pred.GetRunDetails().GetMetadata()
	if pred.GetRunDetails().GetBuilder().GetId() != BuilderIDPrefix+"packer-cloudimg.kvm" || md.GetStartedOn().AsTime() != input().StartedOn || md.GetFinishedOn().AsTime().Second() != 31 {
		t.Errorf("run details %v", pred.GetRunDetails())
	}
}

// Without a source image, git or Packer version, the statement still is
// valid, with what is known.
func TestStatementMinimal(t *testing.T) {
	in := Input{Image: Image{Name: "disk.raw", SHA256: strings.Repeat("0", 64)}, BuilderID: "transcend.qemu", ExternalParameters: map[string]any{"source": "x"}}
	b, err := Statement(in)
	if err != nil {
		t.Fatal(err)
	}
	if _, pred, err := Parse(b); err != nil || len(pred.GetBuildDefinition().GetResolvedDependencies()) != 0 {
		t.Errorf("%v %v", pred, err)
	}
}

// The template's remote is recorded as git+<URI>: an scp-like address as
// an ssh:// URL, credentials dropped, and a local path not at all (the
// commit still is).
func TestStatementTemplateRemote(t *testing.T) {
	for remote, want := range map[string]string{
		"git@github.com:example/images.git":                    "git+ssh://git@github.com/example/images.git",
		"https://oauth2:glpat-SECRET@gitlab.example.org/x.git": "git+https://gitlab.example.org/x.git",
		"/work/main":        "",
		"file:///work/main": "",
	} {
		in := input()
		in.Template.Remote = remote
		b, err := Statement(in)
		if err != nil {
			t.Fatal(err)
		}
		_, pred, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, d := range pred.GetBuildDefinition().GetResolvedDependencies() {
			if d.GetName() != "template" {
				continue
			}
			found = true
			if d.GetUri() != want || d.GetDigest()["gitCommit"] != in.Template.Commit {
				t.Errorf("remote %q: template uri %q, digest %v; want %q and the commit", remote, d.GetUri(), d.GetDigest(), want)
			}
		}
		if !found {
			t.Errorf("remote %q: no template dependency", remote)
		}
		if bytes.Contains(b, []byte("SECRET")) || bytes.Contains(b, []byte("/work/main")) {
			t.Errorf("remote %q: a credential or local path is in the statement", remote)
		}
	}
}

func TestAsURI(t *testing.T) {
	for in, want := range map[string]string{
		"/var/cache/images/debian 12.qcow2":           "file:///var/cache/images/debian%2012.qcow2",
		"https://u:p@example.org/a.qcow2":             "https://example.org/a.qcow2",
		"https://cloud.debian.org/images/a.qcow2?x=1": "https://cloud.debian.org/images/a.qcow2?x=1",
		"file:///var/cache/images/debian-12.qcow2":    "file:///var/cache/images/debian-12.qcow2",
	} {
		if got := asURI(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

func TestDigest(t *testing.T) {
	sha256 := strings.Repeat("a", 64)
	for in, want := range map[string]string{
		"sha256:" + sha256:                    "sha256:" + sha256,
		"SHA256:" + strings.ToUpper(sha256):   "sha256:" + sha256,
		sha256:                                "sha256:" + sha256,
		"md5:" + strings.Repeat("1", 32):      "md5:" + strings.Repeat("1", 32),
		"sha256:abc":                          "",
		"none":                                "",
		"file:https://example.org/SHA256SUMS": "",
		"":                                    "",
	} {
		algo, sum, ok := digest(in)
		if got := algo + ":" + sum; ok != (want != "") || ok && got != want {
			t.Errorf("%q: %s %v, want %q", in, got, ok, want)
		}
	}
}

func TestStatementErrors(t *testing.T) {
	for name, mod := range map[string]func(*Input){
		"no image name":   func(in *Input) { in.Image.Name = "" },
		"bad sha256":      func(in *Input) { in.Image.SHA256 = "abc" },
		"no builder":      func(in *Input) { in.BuilderID = "" },
		"no parameters":   func(in *Input) { in.ExternalParameters = nil },
		"not JSON values": func(in *Input) { in.ExternalParameters = map[string]any{"x": struct{}{}} },
	} {
		in := input()
		mod(&in)
		if _, err := Statement(in); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParseRejects(t *testing.T) {
	good, err := Statement(input())
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"not JSON":        []byte("{"),
		"unknown field":   bytes.Replace(good, []byte(`"subject"`), []byte(`"subjects"`), 1),
		"other predicate": bytes.Replace(good, []byte(PredicateType), []byte("https://slsa.dev/provenance/v0.2"), 1),
		"no build type":   bytes.Replace(good, []byte(BuildType), nil, 1),
		"bad subject":     bytes.Replace(good, []byte(strings.Repeat("ab", 32)), []byte("abab"), 1),
	} {
		if _, _, err := Parse(b); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}
