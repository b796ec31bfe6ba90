package gitremote

import "testing"

func TestURI(t *testing.T) {
	tests := []struct {
		in, want string // want "" = left out
	}{
		{"https://github.com/example/images.git", "https://github.com/example/images.git"},
		{"https://ghp_token@github.com/example/images.git", "https://github.com/example/images.git"},
		{"https://builder:glpat-SECRET@gitlab.example.org/infra/images.git", "https://gitlab.example.org/infra/images.git"},
		{"HTTPS://gitlab.example.org:8443/infra/images.git?private_token=x#frag", "https://gitlab.example.org:8443/infra/images.git"},
		{"http://git.local/repo", "http://git.local/repo"},
		{"git://git.kernel.org/pub/scm/git/git.git", "git://git.kernel.org/pub/scm/git/git.git"},
		{"ssh://git@github.com/example/images.git", "ssh://git@github.com/example/images.git"},
		{"ssh://git:secret@github.com:2222/example/images.git", "ssh://git@github.com:2222/example/images.git"},
		{"git+ssh://deploy@host/srv/repo", "git+ssh://deploy@host/srv/repo"},
		// scp-like: git's short SSH syntax
		{"git@github.com:example/images.git", "ssh://git@github.com/example/images.git"},
		{"git@github.com:/srv/images.git", "ssh://git@github.com/srv/images.git"},
		{"host.example.org:repo.git", "ssh://host.example.org/repo.git"},
		{"git@[2001:db8::1]:org/repo.git", "ssh://git@[2001:db8::1]/org/repo.git"},
		{"me@host:~me/repo.git", "ssh://me@host/~me/repo.git"},
		// local: left out
		{"", ""},
		{"/work/main", ""},
		{"/work/main/.git", ""},
		{"./other", ""},
		{"../other.git", ""},
		{"~/src/repo", ""},
		{"file:///work/main", ""},
		{"FILE:///work/main", ""},
		{"C:\\src\\repo", ""},
		{"C:/src/repo", ""},
		{"dir/with:colon", ""},
		{"https:///no-host", ""},
		{"host:", ""},
	}
	for _, tt := range tests {
		got, ok := URI(tt.in)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("URI(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.want != "")
		}
	}
}

func TestPick(t *testing.T) {
	tests := []struct {
		name    string
		remotes map[string]string
		want    string
	}{
		{"none", nil, ""},
		{"origin only", map[string]string{"origin": "git@github.com:me/fork.git"}, "ssh://git@github.com/me/fork.git"},
		{"upstream wins", map[string]string{"origin": "git@github.com:me/fork.git", "upstream": "https://github.com/org/images.git"}, "https://github.com/org/images.git"},
		{"a local upstream is skipped", map[string]string{"origin": "https://github.com/org/images.git", "upstream": "/srv/mirror"}, "https://github.com/org/images.git"},
		{"only local remotes", map[string]string{"origin": "/work/main"}, ""},
		{"other names are not looked at", map[string]string{"github": "https://github.com/org/images.git"}, ""},
	}
	for _, tt := range tests {
		if got := Pick(tt.remotes); got != tt.want {
			t.Errorf("%s: Pick(%v) = %q, want %q", tt.name, tt.remotes, got, tt.want)
		}
	}
}
