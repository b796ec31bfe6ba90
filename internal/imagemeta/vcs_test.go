package imagemeta

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestStripURLCredentials(t *testing.T) {
	for in, want := range map[string]string{
		"":                                      "",
		"https://github.com/o/r.git":            "https://github.com/o/r.git",
		"https://user:token@github.com/o/r.git": "https://github.com/o/r.git",
		"https://ghp_abc@github.com/o/r.git":    "https://github.com/o/r.git",
		"http://u:p@host:8080/x?y=1#z":          "http://host:8080/x?y=1#z",
		"ssh://git@github.com/o/r.git":          "ssh://git@github.com/o/r.git",
		"ssh://git:pw@github.com/o/r.git":       "ssh://git@github.com/o/r.git",
		"git@github.com:o/r.git":                "git@github.com:o/r.git",
		"/srv/git/r.git":                        "/srv/git/r.git",
		"https://u:p%zz@host/x":                 "https://host/x",
		"https://host/path@with-at":             "https://host/path@with-at",
		"https://a:b@host/path@x":               "https://host/path@x",
	} {
		if got := StripURLCredentials(in); got != want {
			t.Errorf("StripURLCredentials(%q) = %q, want %q", in, got, want)
		}
	}
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestGitInfo(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	t.Setenv("GIT_CONFIG_GLOBAL", "/dev/null")
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	dir := t.TempDir()
	git(t, dir, "init", "-q")

	// Unborn branch: no commit yet, branch known.
	v, err := GitInfo(dir)
	if err != nil {
		t.Fatal(err)
	}
	if v.Commit != "" || v.Branch != "main" || v.Remote != "" || v.Dirty {
		t.Errorf("empty repo: %+v", v)
	}

	os.WriteFile(filepath.Join(dir, "template.pkr.hcl"), []byte("source {}\n"), 0o644)
	git(t, dir, "add", ".")
	git(t, dir, "commit", "-q", "-m", "init")
	git(t, dir, "remote", "add", "origin", "https://builder:glpat-SECRET@gitlab.example.org/infra/images.git")
	head := git(t, dir, "rev-parse", "HEAD")
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)

	v, err = GitInfo(sub) // from a subdirectory (empty dirs do not count as dirty)
	if err != nil {
		t.Fatal(err)
	}
	want := VCS{Commit: head, Branch: "main", Remote: "https://gitlab.example.org/infra/images.git"}
	if *v != want {
		t.Errorf("clean repo: %+v, want %+v", *v, want)
	}

	// An "upstream" remote is preferred over "origin"; scp-like addresses
	// become ssh:// URLs.
	git(t, dir, "remote", "add", "upstream", "git@github.com:org/images.git")
	if v, err = GitInfo(dir); err != nil || v.Remote != "ssh://git@github.com/org/images.git" {
		t.Errorf("with an upstream remote: %+v, %v; want remote ssh://git@github.com/org/images.git", v, err)
	}
	// A local-path remote is left out, and does not hide origin.
	git(t, dir, "remote", "set-url", "upstream", "/srv/git/images")
	if v, err = GitInfo(dir); err != nil || v.Remote != "https://gitlab.example.org/infra/images.git" {
		t.Errorf("with a local upstream: %+v, %v; want origin's URL", v, err)
	}
	git(t, dir, "remote", "set-url", "origin", "../images.git")
	if v, err = GitInfo(dir); err != nil || v.Remote != "" {
		t.Errorf("with only local remotes: %+v, %v; want no remote", v, err)
	}

	os.WriteFile(filepath.Join(dir, "template.pkr.hcl"), []byte("changed\n"), 0o644)
	git(t, dir, "checkout", "-q", "--detach")
	v, err = GitInfo(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Dirty || v.Branch != "" || v.Commit != head {
		t.Errorf("dirty detached repo: %+v", v)
	}
	if _, err := os.Stat(filepath.Join(dir, ".git", "index.lock")); err == nil {
		t.Error("index.lock left behind")
	}
}

func TestGitInfoNoGit(t *testing.T) {
	if _, err := exec.LookPath("git"); err == nil {
		dir := t.TempDir()
		t.Setenv("GIT_CEILING_DIRECTORIES", filepath.Dir(dir))
		if _, err := GitInfo(dir); !errors.Is(err, ErrNoGit) {
			t.Errorf("not a work tree: err = %v, want ErrNoGit", err)
		}
		if _, err := GitInfo(filepath.Join(dir, "missing")); !errors.Is(err, ErrNoGit) {
			t.Errorf("missing dir: err = %v, want ErrNoGit", err)
		}
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := GitInfo("."); !errors.Is(err, ErrNoGit) {
		t.Errorf("git not installed: err = %v, want ErrNoGit", err)
	}
}
