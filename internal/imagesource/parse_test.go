package imagesource

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseListing(t *testing.T) {
	cases := []struct {
		name string
		page string
		want []string
	}{
		{"apache table (cloud.debian.org)", string(fixture(t, "debian/bookworm.html")),
			[]string{"20240717-1811", "20240901-1857", "20241004-1894", "cloud", "daily", "latest"}},
		{"apache pre (cloud-images.ubuntu.com)", string(fixture(t, "ubuntu/noble.html")),
			[]string{"release", "release-20240423", "release-20240821", "release-20241004", "releases"}},
		{"nginx autoindex", "<html><head><title>Index of /cloud/bookworm/</title></head><body><h1>Index of /cloud/bookworm/</h1><hr><pre><a href=\"../\">../</a>\n" +
			"<a href=\"20241004-1894/\">20241004-1894/</a>                                     04-Oct-2024 23:19                   -\n" +
			"<a href=\"SHA512SUMS\">SHA512SUMS</a>                                     04-Oct-2024 23:19                 512\n</pre><hr></body></html>",
			[]string{"20241004-1894"}},
		{"absolute links, single quotes, unquoted, upper case, entities", `<A HREF='/images/cloud/bookworm/20240901-1857/'>x</A>` +
			`<a href=https://mirror.example/debian-cloud/bookworm/20241004-1894/>y</a> <a class=x href = "20240717%2D1811/?C=M&amp;O=A">z</a>`,
			[]string{"20240717-1811", "20240901-1857", "20241004-1894"}},
		{"files, sort links, fragments are no directories", `<a href="?C=N;O=D">Name</a><a href="#top">t</a><a href="SHA512SUMS">s</a><a href="./">.</a>`, []string{}},
		{"truncated page", `<a href="20241004-1894/">ok</a><a href="2024`, []string{"20241004-1894"}},
		{"empty", "", []string{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := parseListing([]byte(c.page)); !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestParseSums(t *testing.T) {
	h64, h128 := strings.Repeat("ab", 32), strings.Repeat("cd", 64)
	cases := []struct {
		name    string
		data    string
		hexLen  int
		want    map[string]string
		wantErr string
	}{
		{"ubuntu binary mode", h64 + " *ubuntu-24.04-server-cloudimg-amd64.img\n" + strings.ToUpper(h64[:2]) + h64[2:] + " *a b.img\n", 64,
			map[string]string{"ubuntu-24.04-server-cloudimg-amd64.img": h64, "a b.img": h64}, ""},
		{"debian text mode, CRLF, blank lines", "\n" + h128 + "  debian-12-genericcloud-amd64-20241004-1894.qcow2\r\n\n", 128,
			map[string]string{"debian-12-genericcloud-amd64-20241004-1894.qcow2": h128}, ""},
		{"no final newline", h64 + "  x", 64, map[string]string{"x": h64}, ""},
		{"wrong digest length", h64 + "  x\n", 128, nil, "line 1 is not a 128-digit checksum line"},
		{"not hex", strings.Repeat("g", 64) + "  x\n", 64, nil, "line 1 is not a 64-digit"},
		{"one space", h64 + " x\n", 64, nil, `line 1: expected two spaces or " *"`},
		{"no name", h64 + "  \n", 64, nil, "line 1: no file name"},
		{"BSD tag format", "SHA256 (x) = " + h64 + "\n", 64, nil, "line 1 is not"},
		{"conflicting duplicates", h64 + "  x\n" + strings.Repeat("0", 64) + "  x\n", 64, nil, "line 2: x listed twice"},
		{"same duplicate", h64 + "  x\n" + h64 + " *x\n", 64, map[string]string{"x": h64}, ""},
		{"empty", "\n\n", 64, nil, "no checksum lines"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseSums([]byte(c.data), c.hexLen)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
	// The fixtures parse, every line.
	for _, f := range []string{"ubuntu/noble-release-20241004.SHA256SUMS", "debian/bookworm-20241004-1894.SHA512SUMS"} {
		hexLen := 64
		if strings.HasSuffix(f, "SHA512SUMS") {
			hexLen = 128
		}
		data := fixture(t, f)
		sums, err := parseSums(data, hexLen)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if n := strings.Count(string(data), "\n"); len(sums) != n {
			t.Errorf("%s: %d sums for %d lines", f, len(sums), n)
		}
	}
}

func TestParseSimplestreams(t *testing.T) {
	ss, err := parseSimplestreams(fixture(t, "ubuntu/released-download.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ss.Products) != 6 {
		t.Errorf("%d products", len(ss.Products))
	}
	key, p, err := ss.product(release{codename: "noble", version: "24.04", known: true}, "arm64")
	if err != nil || key != "com.ubuntu.cloud:server:24.04:arm64" || len(p.Versions) != 2 {
		t.Errorf("%s %v %v", key, p, err)
	}
	// Unknown codename: found by its "release" field.
	if key, _, err := ss.product(release{codename: "oracular"}, "amd64"); err != nil || key != "com.ubuntu.cloud:server:24.10:amd64" {
		t.Errorf("%s %v", key, err)
	}
	if _, _, err := ss.product(release{codename: "noble", version: "24.04", known: true}, "riscv64"); err == nil || !strings.Contains(err.Error(), "no riscv64 image of noble; it has: amd64, arm64") {
		t.Errorf("%v", err)
	}
	for _, bad := range []struct{ data, want string }{
		{`[]`, "not simplestreams JSON"},
		{`{}`, `no "products" object`},
		{`{"format": "products:1.0", "products": []}`, "not simplestreams JSON"},
		{`{"products": {"p": {"versions": {"1": {"items": {"disk1.img": {"sha256": 5}}}}}}}`, "not simplestreams JSON"},
	} {
		if _, err := parseSimplestreams([]byte(bad.data)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: %v, want %q", bad.data, err, bad.want)
		}
	}
	// An item without an ftype is known by its key.
	v := ssVersion{Items: map[string]ssItem{"disk1.img": {Path: "a"}, "manifest": {FType: "manifest"}}}
	if k, it, ok := v.item("disk1.img"); !ok || k != "disk1.img" || it.Path != "a" {
		t.Errorf("%s %v %v", k, it, ok)
	}
}

func TestCompareSerials(t *testing.T) {
	ordered := []string{"20200129", "20200129.1", "20200129.2", "20200129.10", "20241004", "20241004-999", "20241004-1000", "20241005-1"}
	for i := range ordered {
		for j := range ordered {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := compareSerials(ordered[i], ordered[j]); got != want {
				t.Errorf("compareSerials(%s, %s) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
	s := []string{"20240901-1857", "20241004-1894", "20240717-1811"}
	sortNewestFirst(s)
	if s[0] != "20241004-1894" || s[2] != "20240717-1811" {
		t.Errorf("%v", s)
	}
	if got := newestList([]string{"1", "3", "2", "5", "4", "6"}, 3); got != "6, 5, 4, …" {
		t.Errorf("%q", got)
	}
}

func TestSafeRel(t *testing.T) {
	for _, ok := range []string{"server/releases/noble/release-20241004/ubuntu-24.04-server-cloudimg-amd64.img", "a", "a/b+c~d_e.f"} {
		if err := safeRel(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "/etc/passwd", "../x", "a/../../b", "a//b", "./a", "a/", "http://x/y", "a?b", "a#b", "a%2e%2e/b", `a\b`, "a b", "a\x00b", "a\nb"} {
		if err := safeRel(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseBase(t *testing.T) {
	for _, c := range []struct{ in, base, dir string }{
		{"https://cloud-images.ubuntu.com/releases", "https://cloud-images.ubuntu.com/releases/", ""},
		{"http://mirror.local:8080/debian-cloud/", "http://mirror.local:8080/debian-cloud/", ""},
		{"file:///srv/mirror", "file:///srv/mirror/", "/srv/mirror"},
		{"file://localhost/srv/mirror/", "file:///srv/mirror/", "/srv/mirror"},
		{"/srv/my mirror", "file:///srv/my%20mirror/", "/srv/my mirror"},
	} {
		base, dir, err := parseBase(c.in)
		if err != nil || base != c.base || dir != c.dir {
			t.Errorf("parseBase(%q) = %q, %q, %v; want %q, %q", c.in, base, dir, err, c.base, c.dir)
		}
	}
	for _, bad := range []string{"", "s3://bucket/x", "https:///x", "https://h/x?y=1", "https://h/x#f", "file://host/x", "file:relative", "https://h/%zz"} {
		if _, _, err := parseBase(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestNormalizeValidate(t *testing.T) {
	q := Query{Distribution: " Debian ", Release: "Bookworm", Arch: "AARCH64", Serial: "LATEST"}.Normalize()
	want := Query{Distribution: "debian", Release: "bookworm", Arch: "arm64", Serial: "current", Variant: "genericcloud", BaseURL: DefaultDebianBaseURL}
	if q != want {
		t.Errorf("got %+v\nwant %+v", q, want)
	}
	if err := q.Validate(); err != nil {
		t.Error(err)
	}
	// Every problem at once, each naming its field.
	err := Query{Distribution: "ubuntu", Release: "No Ble", Arch: "sparc", Serial: "2024-10-04", Variant: "genericcloud", BaseURL: "gopher://x"}.Normalize().Validate()
	for _, f := range []string{"release: ", "arch: ", "serial: ", "variant: ", "base_url: "} {
		if err == nil || !strings.Contains(err.Error(), f) {
			t.Errorf("%v lacks %q", err, f)
		}
	}
	if got := Variants("ubuntu"); !reflect.DeepEqual(got, []string{"server", "disk-kvm"}) {
		t.Errorf("%v", got)
	}
	if Variants("fedora") != nil || DefaultBaseURL("fedora") != "" {
		t.Error("fedora")
	}
	if len(KnownReleases(Debian)) == 0 || KnownReleases(Ubuntu)[0] != "bionic" {
		t.Error(KnownReleases(Ubuntu))
	}
}
