package cloudinitreset

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/artifactstate"
)

// Facts is the JSON written to the facts file; the metadata post-processor
// embeds it as "guest". Keep the shape stable: fields are only ever added.
// Its first part is artifactstate.Facts, which the builder hands on in its
// artifact and the post-processor reads (for the SBOM too).
type Facts struct {
	artifactstate.Facts
	Reset *Report `json:"reset"`
}

// Package is one installed package (dpkg-query or rpm).
type Package = artifactstate.Package

// Report is what the reset did (or, with dry_run, would do).
type Report struct {
	User         string   `json:"user"`
	RemovedGroup string   `json:"removed_group"` // "" when no group was removed
	ChangedFiles []string `json:"changed_files"` // guest paths rewritten (or deleted: sudoers drop-ins)
	RemovedPaths []string `json:"removed_paths"` // guest paths removed
	Messages     []string `json:"messages"`
	Checks       []Check  `json:"checks"`
	DryRun       bool     `json:"dry_run"`
	// Hostname says how /etc/hostname and /etc/hosts were put back and
	// which build host names were looked for under /etc.
	Hostname *HostnameReport `json:"hostname,omitempty"`
}

// Check is one verification made inside the apply script.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// ApplyResult is the parsed output of the apply script. Its line protocol:
//
//	CHECK <name> ok|fail <detail>
//	CHANGED <path>     WOULD-CHANGE <path>   (account files, sudoers drop-ins)
//	REMOVED <path>     WOULD-REMOVE <path>
//	SET <path> <what>  WOULD-SET <path> <what>
//	NOTE <text>
//	ABORT <reason>     the preflight failed; nothing was changed
//	ERROR <text>       the script stopped early (set -e)
//	DONE <nonce> ok|fail
//
// Lines after DONE, and lines that are none of these, are ignored.
type ApplyResult struct {
	Checks  []Check
	Changed []string
	Removed []string
	Set     []string // "<path> <what>"
	Notes   []string
	Abort   string
	Error   string
	Done    bool // the DONE line with the right nonce was seen
	OK      bool // DONE said ok
}

// Failed returns the checks that failed.
func (r *ApplyResult) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

// ParseApply parses the apply script's output.
func ParseApply(out []byte, nonce string) *ApplyResult {
	r := &ApplyResult{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		word, rest, _ := strings.Cut(line, " ")
		switch word {
		case "CHECK":
			name, rest, _ := strings.Cut(rest, " ")
			status, detail, _ := strings.Cut(rest, " ")
			if name == "" || (status != "ok" && status != "fail") {
				continue
			}
			r.Checks = append(r.Checks, Check{Name: name, OK: status == "ok", Detail: detail})
		case "CHANGED", "WOULD-CHANGE":
			r.Changed = append(r.Changed, rest)
		case "REMOVED", "WOULD-REMOVE":
			r.Removed = append(r.Removed, rest)
		case "SET", "WOULD-SET":
			r.Set = append(r.Set, rest)
		case "NOTE":
			r.Notes = append(r.Notes, rest)
		case "ABORT":
			r.Abort = rest
		case "ERROR":
			r.Error = rest
		case "DONE":
			n, status, _ := strings.Cut(rest, " ")
			if n != nonce {
				continue
			}
			r.Done, r.OK = true, status == "ok"
			return r
		}
	}
	return r
}

// WriteFacts writes f as indented JSON to path atomically (a temporary
// file in the same directory, then a rename), creating the directory.
func WriteFacts(path string, f *Facts) error {
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".facts-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing the facts file: %w", err)
	}
	return nil
}

// emptyIfNil keeps JSON arrays as [] rather than null.
func emptyIfNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
