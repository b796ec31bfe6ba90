package imagesource

import (
	"fmt"
	"strings"
)

// release is a distribution release: its codename (the directory and
// simplestreams "release" name) and version number (in product keys and file
// names).
type release struct {
	codename string
	version  string
	// backports: a Debian "<codename>-backports" image (newer kernel); its
	// directory is "<codename>-backports" and its files
	// "debian-<version>-backports-…".
	backports bool
	// known: the codename was in the tables below. An unknown codename is
	// still looked up in the indexes, so a release newer than this code
	// resolves as long as the mirror has it.
	known bool
}

// dir is the release's directory below the mirror's base.
func (r release) dir() string {
	if r.backports {
		return r.codename + "-backports"
	}
	return r.codename
}

// Newest last. Ubuntu's simplestreams product keys use the version
// ("com.ubuntu.cloud:server:24.04:amd64"); Debian's file names use the major
// version ("debian-12-genericcloud-amd64-20241004-1894.qcow2").
var releases = map[string][]release{
	Ubuntu: {
		{codename: "bionic", version: "18.04"},
		{codename: "focal", version: "20.04"},
		{codename: "jammy", version: "22.04"},
		{codename: "mantic", version: "23.10"},
		{codename: "noble", version: "24.04"},
		{codename: "oracular", version: "24.10"},
		{codename: "plucky", version: "25.04"},
		{codename: "questing", version: "25.10"},
		{codename: "resolute", version: "26.04"},
	},
	Debian: {
		{codename: "buster", version: "10"},
		{codename: "bullseye", version: "11"},
		{codename: "bookworm", version: "12"},
		{codename: "trixie", version: "13"},
		{codename: "forky", version: "14"},
		{codename: "duke", version: "15"},
	},
}

// KnownReleases lists the codenames this package knows for a distribution,
// oldest first. Others are still looked up in the indexes.
func KnownReleases(distribution string) []string {
	var names []string
	for _, r := range releases[distribution] {
		names = append(names, r.codename)
	}
	return names
}

func releaseExamples(distribution string) string {
	switch distribution {
	case Ubuntu:
		return `"noble" or "24.04"`
	case Debian:
		return `"bookworm" or "12"`
	}
	return `"noble", "bookworm"`
}

func isVersionNumber(s string) bool {
	return s != "" && s[0] >= '0' && s[0] <= '9'
}

// lookupRelease maps a codename or version number to a release. A version
// number must be known (it names no directory); an unknown codename is
// returned as is, unless it is a codename of the other distribution.
func lookupRelease(distribution, name string) (release, error) {
	backports := false
	if base, ok := strings.CutSuffix(name, "-backports"); ok {
		if distribution != Debian {
			return release{}, fmt.Errorf("%q: only debian has -backports images", name)
		}
		backports = true
		name = base
	}
	for _, r := range releases[distribution] {
		if r.codename == name || r.version == name {
			r.backports = backports
			r.known = true
			return r, nil
		}
	}
	if isVersionNumber(name) {
		return release{}, fmt.Errorf("unknown %s version %q; use the codename, or one of: %s", distribution, name, strings.Join(knownVersions(distribution), ", "))
	}
	for other, rs := range releases {
		if other == distribution {
			continue
		}
		for _, r := range rs {
			if r.codename == name {
				return release{}, fmt.Errorf("%q is a release of %s, not %s", name, other, distribution)
			}
		}
	}
	return release{codename: name, backports: backports}, nil
}

func knownVersions(distribution string) []string {
	var vs []string
	for _, r := range releases[distribution] {
		vs = append(vs, r.version)
	}
	return vs
}
