package cidata

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzUserDataMerge feeds arbitrary user data to Build. It must never
// panic, and whenever it succeeds the user-data must start with
// #cloud-config, parse as YAML, keep the build user first in users (exactly
// as generated), keep ssh_pwauth false, have a non-empty ssh_genkeytypes
// and start bootcmd with the entry that saves /etc/hostname and /etc/hosts;
// and the same input must give the same output.
func FuzzUserDataMerge(f *testing.F) {
	inputs, _ := filepath.Glob(filepath.Join("testdata", "*.input.yaml"))
	for _, p := range inputs {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"",
		"#cloud-config\n",
		"#cloud-config\nusers: [default, {name: alice}]\n",
		"#cloud-config\nusers: default, alice\nssh_pwauth: off\n",
		"#cloud-config\nusers:\n  - name: packer\n",
		"#cloud-config\na: &a {b: [1, 2]}\nc: {<<: *a, d: 3}\nusers: [*a]\n",
		"#cloud-config\n? [complex, key]\n: value\n",
		"#cloud-config\nruncmd: !!seq [a]\nx: !custom tag\n",
		"#cloud-config\nwrite_files:\n- content: |\n    a\n  path: /x\n",
		"#cloud-config\nssh_genkeytypes: [rsa]\n",
		"#cloud-config\nbootcmd: [echo a, [echo, b]]\nhostname: h\nfqdn: h.example.org\n",
		"#cloud-config\nbootcmd: echo a\n",
		"#cloud-config\nfqdn: ~\npreserve_hostname: true\n",
		"#cloud-config\nusers: {alice: {}}\n",
		"#cloud-config\n- a\n",
		"#!/bin/sh\n",
	} {
		f.Add([]byte(s))
	}
	c := baseConfig()
	wantUser := decodeUserData(f, mustBuildF(f, c).UserData)["users"].([]any)[0]

	f.Fuzz(func(t *testing.T, userData []byte) {
		c := baseConfig()
		c.UserData = userData
		s, err := Build(c)
		if err != nil {
			return
		}
		if !bytes.HasPrefix(s.UserData, []byte("#cloud-config\n")) {
			t.Fatalf("no #cloud-config header:\n%s", s.UserData)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(s.UserData, &doc); err != nil {
			t.Fatalf("output does not parse: %v\n%s", err, s.UserData)
		}
		var m map[any]any
		if err := doc.Decode(&m); err != nil {
			t.Fatalf("output does not decode: %v\n%s", err, s.UserData)
		}
		users, ok := m["users"].([]any)
		if !ok || len(users) == 0 {
			t.Fatalf("users = %#v\n%s", m["users"], s.UserData)
		}
		if !reflect.DeepEqual(normalize(users[0]), wantUser) {
			t.Fatalf("first user is %#v, want %#v\n%s", users[0], wantUser, s.UserData)
		}
		if m["ssh_pwauth"] != false {
			t.Fatalf("ssh_pwauth = %#v", m["ssh_pwauth"])
		}
		if kt, ok := m["ssh_genkeytypes"].([]any); !ok || len(kt) == 0 {
			t.Fatalf("ssh_genkeytypes = %#v", m["ssh_genkeytypes"])
		}
		if bc, ok := m["bootcmd"].([]any); !ok || len(bc) == 0 || bc[0] != saveEtcScript {
			t.Fatalf("bootcmd does not start with the save entry: %#v\n%s", m["bootcmd"], s.UserData)
		}
		if bytes.Contains(s.UserData, []byte("\n#cloud-config")) {
			t.Fatalf("header repeated:\n%s", s.UserData)
		}
		again, err := Build(c)
		if err != nil || !bytes.Equal(again.UserData, s.UserData) {
			t.Fatalf("not deterministic: %v", err)
		}
	})
}

func mustBuildF(f *testing.F, c Config) *Seed {
	s, err := Build(c)
	if err != nil {
		f.Fatal(err)
	}
	return s
}

// normalize turns map[any]any (what decoding into map[any]any gives for
// nested mappings) into map[string]any for comparison.
func normalize(v any) any {
	switch v := v.(type) {
	case map[any]any:
		m := map[string]any{}
		for k, e := range v {
			ks, ok := k.(string)
			if !ok {
				return v
			}
			m[ks] = normalize(e)
		}
		return m
	case map[string]any:
		m := map[string]any{}
		for k, e := range v {
			m[k] = normalize(e)
		}
		return m
	case []any:
		l := make([]any, len(v))
		for i, e := range v {
			l[i] = normalize(e)
		}
		return l
	}
	return v
}

// FuzzNetworkConfig: a user network-config is either rejected or written
// verbatim, and the check never panics.
func FuzzNetworkConfig(f *testing.F) {
	for _, s := range []string{
		"version: 2\nethernets:\n  eth0:\n    dhcp4: true\n",
		"network:\n  config: disabled\n",
		"version: 1\nconfig: []\n",
		"- a\n",
		"a: [\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, nc []byte) {
		c := baseConfig()
		c.NetworkConfig = nc
		s, err := Build(c)
		if err != nil {
			return
		}
		if len(bytes.TrimSpace(nc)) > 0 && !bytes.Equal(s.NetworkConfig, nc) {
			t.Fatalf("network-config changed: %q -> %q", nc, s.NetworkConfig)
		}
		var v any
		if err := yaml.Unmarshal(s.NetworkConfig, &v); err != nil {
			t.Fatalf("accepted network-config does not parse: %v", err)
		}
	})
}
