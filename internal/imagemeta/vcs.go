package imagemeta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/gitremote"
)

// VCS is the state of the version-control work tree holding the template.
type VCS struct {
	// Commit is the full hash of HEAD; empty in a repository without
	// commits.
	Commit string `json:"commit,omitempty"`
	// Branch is the checked-out branch; empty when HEAD is detached.
	Branch string `json:"branch,omitempty"`
	// Remote is the repository's address as a URI without credentials: the
	// "upstream" remote, else "origin", scp-like addresses as ssh:// URLs;
	// empty when neither is set or both are local paths (the rule of
	// internal/gitremote).
	Remote string `json:"remote,omitempty"`
	// Dirty is true when the work tree has uncommitted changes or
	// untracked files.
	Dirty bool `json:"dirty"`
}

// ErrNoGit is returned (wrapped, with the reason) by GitInfo when the git
// command is not installed or the directory is not inside a git work tree.
// Callers are expected to warn and omit the VCS section.
var ErrNoGit = errors.New("no git work tree")

// gitTimeout bounds each git invocation of GitInfo.
const gitTimeout = 30 * time.Second

// GitInfo describes the git work tree containing dir using the git command
// line: HEAD commit, branch, remote URI (gitremote.Pick of the "upstream"
// and "origin" remotes) and whether the tree is dirty. It returns an error wrapping ErrNoGit when git is
// missing or dir is not in a work tree.
func GitInfo(dir string) (*VCS, error) {
	return GitInfoContext(context.Background(), dir)
}

// GitInfoContext is GitInfo with cancellation.
func GitInfoContext(ctx context.Context, dir string) (*VCS, error) {
	if _, err := exec.LookPath("git"); err != nil {
		return nil, fmt.Errorf("%w: git command not found: %v", ErrNoGit, err)
	}
	inside, err := runGit(ctx, dir, "rev-parse", "--is-inside-work-tree")
	if err != nil || inside != "true" {
		if err == nil {
			err = fmt.Errorf("%s is not inside a work tree", dir)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %v", ErrNoGit, err)
	}
	v := &VCS{}
	// A repository without commits has no HEAD commit: leave it empty.
	if c, err := runGit(ctx, dir, "rev-parse", "--verify", "-q", "HEAD"); err == nil {
		v.Commit = c
	}
	// symbolic-ref also works on an unborn branch and fails when HEAD is
	// detached, which is what we want ("HEAD" is not a branch).
	if b, err := runGit(ctx, dir, "symbolic-ref", "-q", "--short", "HEAD"); err == nil {
		v.Branch = b
	}
	// A missing remote makes "config --get" exit 1: not an error.
	remotes := map[string]string{}
	for _, name := range gitremote.Names {
		if r, err := runGit(ctx, dir, "config", "--get", "remote."+name+".url"); err == nil {
			remotes[name] = r
		}
	}
	v.Remote = gitremote.Pick(remotes)
	st, err := runGit(ctx, dir, "status", "--porcelain")
	if err != nil {
		return nil, fmt.Errorf("imagemeta: git status in %s: %w", dir, err)
	}
	v.Dirty = st != ""
	return v, nil
}

func runGit(ctx context.Context, dir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, gitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	// GIT_OPTIONAL_LOCKS=0: "git status" must not take index.lock, or two
	// builds recording metadata at once (or the user's own git) would
	// collide. LC_ALL=C: stable messages.
	cmd.Env = append(os.Environ(), "GIT_OPTIONAL_LOCKS=0", "LC_ALL=C", "GIT_TERMINAL_PROMPT=0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, msg)
		}
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(stdout.String()), nil
}

// StripURLCredentials removes credentials from a URL before it is recorded:
// the password always, and for every scheme but ssh the user name too
// (tokens are often passed as the user name, as in
// https://TOKEN@host/repo). scp-like git addresses (git@host:path) and
// strings that are not URLs are returned unchanged.
func StripURLCredentials(raw string) string {
	if raw == "" || !strings.Contains(raw, "@") || !strings.Contains(raw, "://") {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		if err != nil {
			return stripAuthorityUserinfo(raw)
		}
		return raw
	}
	switch strings.ToLower(u.Scheme) {
	case "ssh", "git+ssh", "ssh+git":
		u.User = url.User(u.User.Username())
	default:
		u.User = nil
	}
	return u.String()
}

// stripAuthorityUserinfo drops "userinfo@" from scheme://userinfo@host/...
// for strings net/url rejects.
func stripAuthorityUserinfo(raw string) string {
	i := strings.Index(raw, "://")
	rest := raw[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndex(rest[:end], "@")
	if at < 0 {
		return raw
	}
	return raw[:i+3] + rest[at+1:]
}
