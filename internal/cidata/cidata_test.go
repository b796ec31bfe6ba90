package cidata

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// Fixed test keys (ed25519 keys from seeds 0x01… and 0x02…).
const (
	testKey      = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c packer-build"
	testMAC      = "52:54:00:AB:cd:01"
	testInstance = "cloudimg-0123456789abcdef"
)

func baseConfig() Config {
	return Config{
		InstanceID:    testInstance,
		Hostname:      "packer-web",
		Username:      "packer",
		AuthorizedKey: testKey,
		MAC:           testMAC,
	}
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\n--- got:\n%s\n--- want:\n%s", name, got, want)
	}
}

func mustBuild(t *testing.T, c Config) *Seed {
	t.Helper()
	s, err := Build(c)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return s
}

func TestGolden(t *testing.T) {
	withExtras := baseConfig()
	withExtras.MetaData = map[string]string{"zone": "eu-1", "build-name": "web", "flag": "yes", "count": "0644"}

	merged := baseConfig()
	merged.UserData = readTestdata(t, "user-data-merged.input.yaml")
	merged.UserDataName = "user_data_file (user-data-merged.input.yaml)"

	anchors := baseConfig()
	anchors.UserData = readTestdata(t, "user-data-anchors.input.yaml")

	keyTypes := baseConfig()
	keyTypes.SSHGenKeyTypes = []string{"ed25519", "rsa"}

	for _, tc := range []struct {
		golden string
		c      Config
		file   func(*Seed) []byte
	}{
		{"user-data-plain.golden", baseConfig(), func(s *Seed) []byte { return s.UserData }},
		{"user-data-merged.golden", merged, func(s *Seed) []byte { return s.UserData }},
		{"user-data-anchors.golden", anchors, func(s *Seed) []byte { return s.UserData }},
		{"user-data-keytypes.golden", keyTypes, func(s *Seed) []byte { return s.UserData }},
		{"meta-data.golden", baseConfig(), func(s *Seed) []byte { return s.MetaData }},
		{"meta-data-extras.golden", withExtras, func(s *Seed) []byte { return s.MetaData }},
		{"network-config-default.golden", baseConfig(), func(s *Seed) []byte { return s.NetworkConfig }},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			s := mustBuild(t, tc.c)
			got := tc.file(s)
			golden(t, tc.golden, got)
			// Same Config, same bytes.
			if again := tc.file(mustBuild(t, tc.c)); !bytes.Equal(got, again) {
				t.Errorf("output is not deterministic:\n%s\n---\n%s", got, again)
			}
			var v any
			if err := yaml.Unmarshal(got, &v); err != nil {
				t.Errorf("output is not valid YAML: %v", err)
			}
		})
	}
}

// decodeUserData parses generated user-data into Go values.
func decodeUserData(t testing.TB, b []byte) map[string]any {
	t.Helper()
	if !bytes.HasPrefix(b, []byte("#cloud-config\n")) {
		t.Fatalf("user-data does not start with #cloud-config:\n%s", b)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("user-data is not valid YAML: %v\n%s", err, b)
	}
	return m
}

func TestUserDataPlain(t *testing.T) {
	s := mustBuild(t, baseConfig())
	m := decodeUserData(t, s.UserData)
	want := map[string]any{
		"users": []any{map[string]any{
			"name":                "packer",
			"sudo":                "ALL=(ALL) NOPASSWD:ALL",
			"shell":               "/bin/bash",
			"lock_passwd":         true,
			"ssh_authorized_keys": []any{testKey},
		}},
		"ssh_pwauth":      false,
		"ssh_genkeytypes": []any{"ed25519"},
		"ssh":             map[string]any{"emit_keys_to_console": false},
		"hostname":        "packer-web",
		"fqdn":            "packer-web",
		"bootcmd":         []any{saveEtcScript},
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("got %#v\nwant %#v", m, want)
	}
	for _, bad := range []string{"passwd", "password", "hashed_passwd", "plain_text_passwd", "chpasswd"} {
		if _, ok := users(t, m)[0][bad]; ok {
			t.Errorf("the build user has %s", bad)
		}
		if _, ok := m[bad]; ok {
			t.Errorf("user-data has %s", bad)
		}
	}
	if len(s.Warnings) != 0 {
		t.Errorf("warnings: %q", s.Warnings)
	}
}

// users returns the users list of decoded user-data.
func users(t testing.TB, m map[string]any) []map[string]any {
	t.Helper()
	l, ok := m["users"].([]any)
	if !ok {
		t.Fatalf("users is %#v", m["users"])
	}
	var out []map[string]any
	for _, u := range l {
		um, _ := u.(map[string]any)
		out = append(out, um)
	}
	return out
}

func TestUserDataMerged(t *testing.T) {
	c := baseConfig()
	c.UserData = readTestdata(t, "user-data-merged.input.yaml")
	s := mustBuild(t, c)
	m := decodeUserData(t, s.UserData)

	users := m["users"].([]any)
	if len(users) != 2 || users[0].(map[string]any)["name"] != "packer" || users[1].(map[string]any)["name"] != "deploy" {
		t.Errorf("users: %#v", users)
	}
	if got := m["ssh_genkeytypes"]; !reflect.DeepEqual(got, []any{"ed25519", "ecdsa"}) {
		t.Errorf("ssh_genkeytypes = %#v, want the user's list", got)
	}
	if m["ssh_pwauth"] != false {
		t.Errorf("ssh_pwauth = %#v", m["ssh_pwauth"])
	}
	if got := len(m["runcmd"].([]any)); got != 2 {
		t.Errorf("runcmd has %d entries", got)
	}
	// Scalars keep their text, so cloud-init's YAML 1.1 reads them as the
	// user wrote them.
	for _, want := range []string{"permissions: '0755'", "permissions: '0644'", "package_upgrade: yes", "echo \"hello, $1\""} {
		if !bytes.Contains(s.UserData, []byte(want)) {
			t.Errorf("user-data lacks %q:\n%s", want, s.UserData)
		}
	}
	if bytes.Contains(s.UserData, []byte("# A web server")) {
		t.Error("comments should be dropped")
	}
	if bytes.Count(s.UserData, []byte("#cloud-config")) != 1 {
		t.Errorf("header repeated:\n%s", s.UserData)
	}
}

func TestUserDataAnchorsExpanded(t *testing.T) {
	c := baseConfig()
	c.UserData = readTestdata(t, "user-data-anchors.input.yaml")
	s := mustBuild(t, c)
	if bytes.ContainsAny(s.UserData, "&*") || bytes.Contains(s.UserData, []byte("<<")) {
		t.Errorf("anchors, aliases or merge keys left:\n%s", s.UserData)
	}
	m := decodeUserData(t, s.UserData)
	files := m["write_files"].([]any)
	want := []any{
		map[string]any{"path": "/etc/app/a.conf", "content": "a", "owner": "root:root", "permissions": "0600"},
		map[string]any{"path": "/etc/app/b.conf", "content": "b", "owner": "root:root", "permissions": "0640"},
	}
	if !reflect.DeepEqual(files, want) {
		t.Errorf("write_files = %#v\nwant %#v", files, want)
	}
	alice := m["users"].([]any)[1].(map[string]any)
	if !reflect.DeepEqual(alice["groups"], []any{"adm", "sudo"}) {
		t.Errorf("alice = %#v", alice)
	}
}

func TestUserDataEdgeCases(t *testing.T) {
	plain := mustBuild(t, baseConfig()).UserData
	for _, tc := range []struct {
		name     string
		in       string
		same     bool     // same output as without user data
		contains []string // else: output contains these
		warn     string
	}{
		{name: "nil", in: "", same: true},
		{name: "whitespace", in: " \n\t\n", same: true},
		{name: "header only", in: "#cloud-config\n", same: true},
		{name: "comments only", in: "#cloud-config\n# nothing yet\n", same: true},
		{name: "null document", in: "#cloud-config\n~\n", same: true},
		{name: "empty mapping", in: "#cloud-config\n{}\n", same: true},
		{name: "CRLF and BOM", in: "\xef\xbb\xbf#cloud-config\r\npackages: [vim]\r\n", contains: []string{"packages: [vim]"}},
		{name: "header with trailing space", in: "#cloud-config  \npackages: [vim]\n", contains: []string{"packages: [vim]"}},
		{name: "null users and keys ignored", in: "#cloud-config\nusers:\nssh_pwauth:\nssh_genkeytypes:\n", same: true},
		{name: "ssh_pwauth false repeated", in: "#cloud-config\nssh_pwauth: no\n", same: true},
		{name: "ssh_pwauth false string", in: "#cloud-config\nssh_pwauth: 'false'\n", same: true},
		{name: "users default", in: "#cloud-config\nusers: [default]\n", contains: []string{"  - default\n"}, warn: "line 2: users lists \"default\""},
		{name: "users comma string", in: "#cloud-config\nusers: default, alice\n", contains: []string{"  - default\n  - alice\n"}, warn: "default"},
		{name: "users plain names", in: "#cloud-config\nusers: [alice, bob]\n", contains: []string{"  - alice\n  - bob\n"}},
		{name: "top-level ssh keys kept", in: "#cloud-config\nssh_authorized_keys: [k1]\n", contains: []string{"ssh:\n  emit_keys_to_console: false\n", "\nssh_authorized_keys: [k1]\n"}},
		{name: "user's ssh settings merge", in: "#cloud-config\nssh:\n  emit_keys_to_console: true\n", contains: []string{"ssh:\n  emit_keys_to_console: true\n"}},
		{name: "octal stays plain", in: "#cloud-config\nwrite_files:\n  - {path: /x, permissions: 0755}\n", contains: []string{"permissions: 0755}"}},
		{name: "yes stays plain", in: "#cloud-config\nmanage_etc_hosts: yes\n", contains: []string{"manage_etc_hosts: yes\n"}},
		{name: "mac stays quoted", in: "#cloud-config\nx: \"52:54:00:12:34:56\"\n", contains: []string{"x: \"52:54:00:12:34:56\"\n"}},
		{name: "user wins scalars", in: "#cloud-config\nhostname: web\nhostname_x: 1\n", contains: []string{"hostname: web\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := baseConfig()
			c.UserData = []byte(tc.in)
			s := mustBuild(t, c)
			if tc.same && !bytes.Equal(s.UserData, plain) {
				t.Errorf("got\n%s\nwant the plain user-data\n%s", s.UserData, plain)
			}
			for _, want := range tc.contains {
				if !bytes.Contains(s.UserData, []byte(want)) {
					t.Errorf("user-data lacks %q:\n%s", want, s.UserData)
				}
			}
			decodeUserData(t, s.UserData)
			switch {
			case tc.warn == "" && len(s.Warnings) > 0:
				t.Errorf("unexpected warnings %q", s.Warnings)
			case tc.warn != "" && (len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], tc.warn)):
				t.Errorf("warnings %q, want one containing %q", s.Warnings, tc.warn)
			}
		})
	}
}

func TestUserDataErrors(t *testing.T) {
	const name = "user_data_file (seed/user-data.yaml)"
	for _, tc := range []struct {
		name string
		in   string
		want []string // substrings of the error
	}{
		{"invalid YAML", "#cloud-config\npackages:\n  - vim\n bad: [\n", []string{name, "invalid YAML at line 4"}},
		{"error after multi-line flow list", "#cloud-config\npackages: [a,\n  b]\nruncmd:\n  - x\n - y\n", []string{name, "line 6"}},
		{"unclosed quote", "#cloud-config\na: 1\nb: \"open\nc: 2\n", []string{name, "line 3"}},
		{"mapping in list item", "#cloud-config\nruncmd:\n  - echo a: b: c\n", []string{name, "line 3"}},
		{"bad indentation", "#cloud-config\nruncmd:\n  - a\n - b\n", []string{name, "line 4"}},
		{"tab indentation", "#cloud-config\nruncmd:\n\t- a\n", []string{name, "line 3"}},
		{"duplicate key", "#cloud-config\npackages: [a]\nruncmd: []\npackages: [b]\n", []string{name, "line 4", "packages"}},
		{"shell script", "#!/bin/bash\necho hi\n", []string{name, "only #cloud-config", "shell script", "write_files", "runcmd"}},
		{"include", "#include\nhttp://example.org/x\n", []string{name, "#include"}},
		{"jinja", "## template: jinja\n#cloud-config\nhostname: {{ v1.local_hostname }}\n", []string{name, "jinja"}},
		{"mime", "Content-Type: multipart/mixed; boundary=\"x\"\nMIME-Version: 1.0\n\n--x\n", []string{name, "MIME multipart"}},
		{"archive", "#cloud-config-archive\n- type: text/cloud-config\n", []string{name, "archive"}},
		{"boothook", "#cloud-boothook\necho hi\n", []string{name, "boothook"}},
		{"gzip", "\x1f\x8b\x08\x00", []string{name, "gzip"}},
		{"no header", "packages: [vim]\n", []string{name, "#cloud-config", `"packages: [vim]"`}},
		{"header not first", "\n#cloud-config\npackages: [vim]\n", []string{name, "#cloud-config"}},
		{"top-level list", "#cloud-config\n- a\n- b\n", []string{name, "line 2", "list", "mapping"}},
		{"top-level scalar", "#cloud-config\nhello\n", []string{name, "line 2", "scalar"}},
		{"two documents", "#cloud-config\na: 1\n---\nb: 2\n", []string{name, "second YAML document"}},
		{"duplicate build user", "#cloud-config\nusers:\n  - default\n  - name: packer\n    groups: [adm]\n", []string{name, "line 4", `"packer"`, "build user"}},
		{"duplicate build user by name", "#cloud-config\nusers: [alice, packer]\n", []string{name, `"packer"`}},
		{"duplicate build user in string", "#cloud-config\nusers: alice,packer\n", []string{name, `"packer"`}},
		{"users mapping", "#cloud-config\nusers:\n  alice: {}\n", []string{name, "users must be a list"}},
		{"ssh_pwauth true", "#cloud-config\nssh_pwauth: true\n", []string{name, "line 2", "ssh_pwauth must stay false"}},
		{"ssh_pwauth unchanged", "#cloud-config\nssh_pwauth: unchanged\n", []string{name, "ssh_pwauth"}},
		{"ssh_genkeytypes empty", "#cloud-config\nssh_genkeytypes: []\n", []string{name, "ssh_genkeytypes", "non-empty"}},
		{"ssh_genkeytypes unknown", "#cloud-config\nssh_genkeytypes: [ed-25519]\n", []string{name, "ssh_genkeytypes"}},
		{"ssh_genkeytypes scalar", "#cloud-config\nssh_genkeytypes: ed25519\n", []string{name, "ssh_genkeytypes"}},
		{"power_state", "#cloud-config\npower_state:\n  mode: poweroff\n", []string{name, "line 2", "power_state"}},
		{"unknown alias", "#cloud-config\na: *nope\n", []string{name, "nope"}},
		{"alias bomb", "#cloud-config\n" + aliasBomb(), []string{name}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := baseConfig()
			c.UserData = []byte(tc.in)
			c.UserDataName = name
			s, err := Build(c)
			if err == nil {
				t.Fatalf("no error; user-data:\n%s", s.UserData)
			}
			t.Log(err)
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

// aliasBomb is a "billion laughs" document.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 10; i++ {
		b.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	return b.String()
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no instance id", func(c *Config) { c.InstanceID = "" }, "instance id is required"},
		{"instance id with slash", func(c *Config) { c.InstanceID = "a/b" }, "instance id"},
		{"instance id dot dot", func(c *Config) { c.InstanceID = ".." }, "instance id"},
		{"bad hostname", func(c *Config) { c.Hostname = "under_score" }, "hostname"},
		{"hostname label too long", func(c *Config) { c.Hostname = strings.Repeat("a", 64) }, "hostname"},
		{"no user", func(c *Config) { c.Username = "" }, "user name is required"},
		{"root", func(c *Config) { c.Username = "root" }, "root"},
		{"bad user", func(c *Config) { c.Username = "Packer" }, "build user name"},
		{"no key", func(c *Config) { c.AuthorizedKey = "" }, "authorized key is required"},
		{"garbage key", func(c *Config) { c.AuthorizedKey = "ssh-ed25519 notbase64" }, "authorized key"},
		{"two keys", func(c *Config) { c.AuthorizedKey = testKey + "\n" + testKey }, "single line"},
		{"bad MAC", func(c *Config) { c.MAC = "52:54:00:12:34" }, "MAC address"},
		{"EUI-64 MAC", func(c *Config) { c.MAC = "02:00:5e:10:00:00:00:01" }, "MAC address"},
		{"empty key types", func(c *Config) { c.SSHGenKeyTypes = []string{} }, "empty"},
		{"dsa key type", func(c *Config) { c.SSHGenKeyTypes = []string{"dsa"} }, `"dsa"`},
		{"meta-data instance-id", func(c *Config) { c.MetaData = map[string]string{"instance-id": "x"} }, "instance-id"},
		{"meta-data bad key", func(c *Config) { c.MetaData = map[string]string{"a b": "x"} }, `"a b"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := baseConfig()
			tc.mod(&c)
			_, err := Build(c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestNetworkConfig(t *testing.T) {
	t.Run("no MAC, none given: no file", func(t *testing.T) {
		c := baseConfig()
		c.MAC = ""
		if s := mustBuild(t, c); s.NetworkConfig != nil {
			t.Errorf("network-config %q, want none", s.NetworkConfig)
		}
		if _, ok := mustBuild(t, c).Files()[FileNetworkConfig]; ok {
			t.Error("Files has network-config")
		}
	})
	t.Run("default", func(t *testing.T) {
		s := mustBuild(t, baseConfig())
		var m map[string]any
		if err := yaml.Unmarshal(s.NetworkConfig, &m); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"version": 2, "ethernets": map[string]any{"nic0": map[string]any{
			"match": map[string]any{"macaddress": "52:54:00:ab:cd:01"}, "dhcp4": true}}}
		if !reflect.DeepEqual(m, want) {
			t.Errorf("got %#v", m)
		}
		if bytes.Contains(s.NetworkConfig, []byte("set-name")) || bytes.Contains(s.NetworkConfig, []byte("driver")) {
			t.Errorf("network-config uses set-name or driver:\n%s", s.NetworkConfig)
		}
		d, err := DefaultNetworkConfig(testMAC)
		if err != nil || !bytes.Equal(d, s.NetworkConfig) {
			t.Errorf("DefaultNetworkConfig = %q, %v", d, err)
		}
	})
	for _, good := range []string{
		"version: 2\nethernets:\n  eth0:\n    dhcp4: true\n",
		"network:\n  version: 2\n  ethernets: {}\n",
		"network:\n  config: disabled\n",
		"version: 1\nconfig:\n  - type: physical\n    name: eth0\n",
	} {
		t.Run("user verbatim", func(t *testing.T) {
			c := baseConfig()
			c.NetworkConfig = []byte(good)
			if s := mustBuild(t, c); string(s.NetworkConfig) != good {
				t.Errorf("got %q, want verbatim %q", s.NetworkConfig, good)
			}
		})
	}
	for _, tc := range []struct{ in, want string }{
		{"version: 2\nethernets:\n  eth0:\n  dhcp4: true\n   x: 1\n", "line 5"},
		{"ethernets:\n  eth0: {dhcp4: true}\n", "version"},
		{"- version: 2\n", "mapping"},
		{"network: disabled\n", "network:"},
		{"version: 3\n", "version: 3"},
		{"version: \"2\"\n", "version"},
	} {
		t.Run("bad", func(t *testing.T) {
			c := baseConfig()
			c.NetworkConfig = []byte(tc.in)
			c.NetworkConfigName = "network_config_file (net.yaml)"
			_, err := Build(c)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), c.NetworkConfigName) {
				t.Errorf("%q: error %v, want one naming the option and containing %q", tc.in, err, tc.want)
			}
		})
	}
	t.Run("whitespace is none", func(t *testing.T) {
		c := baseConfig()
		c.NetworkConfig = []byte("\n \n")
		s := mustBuild(t, c)
		if d, _ := DefaultNetworkConfig(testMAC); !bytes.Equal(s.NetworkConfig, d) {
			t.Errorf("got %q, want the default", s.NetworkConfig)
		}
	})
}

func TestMetaDataAndVendorData(t *testing.T) {
	c := baseConfig()
	c.Hostname = ""
	c.VendorData = []byte("#cloud-config\n{}\n")
	s := mustBuild(t, c)
	if string(s.MetaData) != "instance-id: "+testInstance+"\n" {
		t.Errorf("meta-data %q", s.MetaData)
	}
	if string(s.VendorData) != string(c.VendorData) {
		t.Errorf("vendor-data %q", s.VendorData)
	}
	if len(s.Files()) != 4 {
		t.Errorf("Files: %v", s.Files())
	}
	c.VendorData = nil
	if s := mustBuild(t, c); s.VendorData != nil {
		t.Errorf("vendor-data %q, want none", s.VendorData)
	}
}

func TestNewInstanceID(t *testing.T) {
	a, b := NewInstanceID(), NewInstanceID()
	if a == b || !instanceIDRE.MatchString(a) || !strings.HasPrefix(a, "cloudimg-") || len(a) != len("cloudimg-")+16 {
		t.Errorf("NewInstanceID: %q, %q", a, b)
	}
	c := baseConfig()
	c.InstanceID = a
	mustBuild(t, c)
}
