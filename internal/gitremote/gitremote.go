// Package gitremote turns a git remote's configured address into the URI
// that records of a build name the template's repository by: the metadata
// document's vcs.remote, the provenance's "template" dependency (as
// git+<URI>), and an OCI image's org.opencontainers.image.source. One rule
// for all of them, with no git or network access:
//
//   - the remote is "upstream" if the repository has one, else "origin";
//   - a URL (https, http, ssh, git, git+ssh…) is kept with its scheme, host,
//     port and path; for ssh the user name is kept (it is the account the
//     server expects, as in ssh://git@host/path) and a password dropped, for
//     every other scheme the whole user information is dropped (tokens are
//     often passed as the user name); query and fragment are dropped;
//   - an scp-like address ([user@]host:path, git's short SSH syntax) becomes
//     ssh://[user@]host/path (git reads a relative scp path from the
//     account's home; hosting services map both forms to the same repository);
//   - a local path or file: URL is left out: it names a directory of the
//     build host, which is neither a URI another machine can use nor
//     something to publish.
package gitremote

import (
	"net/url"
	"strings"
)

// Names are the remotes Pick looks at, in order of preference.
var Names = []string{"upstream", "origin"}

// Pick returns the URI (see URI) of the preferred remote among remotes
// (remote name → configured URL, as in `git config remote.NAME.url`):
// "upstream" when it has one, else "origin". A preferred remote whose
// address gives no URI (a local path) is skipped for the next. It returns
// "" when none gives one.
func Pick(remotes map[string]string) string {
	for _, n := range Names {
		if u, ok := URI(remotes[n]); ok {
			return u
		}
	}
	return ""
}

// URI returns the remote address raw as a well-formed URI without
// credentials, and false when raw names no remote machine (empty, a local
// path, a file: URL) or cannot be read as an address. See the package
// documentation for the rule.
func URI(raw string) (string, bool) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", false
	}
	if i := strings.Index(raw, "://"); i > 0 && !strings.ContainsAny(raw[:i], "/@:") {
		return fromURL(raw)
	}
	if host, path, user, ok := scpLike(raw); ok {
		u := &url.URL{Scheme: "ssh", Host: host, Path: "/" + strings.TrimPrefix(path, "/")}
		if user != "" {
			u.User = url.User(user)
		}
		return fromURL(u.String())
	}
	return "", false // a local path (absolute, relative, ~) or not an address
}

func fromURL(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Opaque != "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme == "file" || u.Hostname() == "" {
		return "", false
	}
	u.Scheme = scheme
	switch scheme {
	case "ssh", "git+ssh", "ssh+git":
		if u.User != nil {
			u.User = url.User(u.User.Username())
		}
	default:
		u.User = nil
	}
	u.RawQuery, u.Fragment, u.RawFragment, u.ForceQuery = "", "", "", false
	return u.String(), true
}

// scpLike splits git's scp-like syntax [user@]host:path. As git does, it is
// only that when a colon comes before any slash; a bracketed host ([::1])
// may hold colons. A single letter before the colon is taken as a Windows
// drive (C:\repo), not a host.
func scpLike(s string) (host, path, user string, ok bool) {
	rest := s
	if at := strings.Index(rest, "@"); at >= 0 && !strings.Contains(rest[:at], "/") && !strings.Contains(rest[:at], ":") {
		user, rest = rest[:at], rest[at+1:]
	}
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]:")
		if end < 0 {
			return "", "", "", false
		}
		host, path = rest[:end+1], rest[end+2:]
	} else {
		colon := strings.Index(rest, ":")
		if colon <= 0 || strings.Contains(rest[:colon], "/") {
			return "", "", "", false
		}
		host, path = rest[:colon], rest[colon+1:]
		if len(host) == 1 && user == "" {
			return "", "", "", false
		}
	}
	if host == "" || path == "" {
		return "", "", "", false
	}
	return host, path, user, true
}
