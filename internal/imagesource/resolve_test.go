package imagesource

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sumOf is the digest a fixture SUMS file lists for name (read here with a
// plain field split, independently of parseSums).
func sumOf(t *testing.T, fixtureName, name string) string {
	t.Helper()
	for _, line := range strings.Split(string(fixture(t, fixtureName)), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && strings.TrimPrefix(f[1], "*") == name {
			return f[0]
		}
	}
	t.Fatalf("%s does not list %s", fixtureName, name)
	return ""
}

type want struct {
	rel         string // image path below the base
	checksum    string
	serial      string
	checksumRel string // checksum file below the base
}

func resolveCases(t *testing.T) []struct {
	name string
	m    mirror
	q    Query
	want want
} {
	noble := "server/releases/noble/release-20241004/"
	bw := "bookworm/20241004-1894/"
	return []struct {
		name string
		m    mirror
		q    Query
		want want
	}{
		{"ubuntu noble defaults", ubuntuMirror, Query{Distribution: "ubuntu", Release: "noble"}, want{
			noble + "ubuntu-24.04-server-cloudimg-amd64.img",
			"sha256:ac7b643065bda0d946845c20813cf3686d1aa4b2c4aff55e283b23aba297213f", "20241004", noble + "SHA256SUMS"}},
		{"ubuntu by version number, latest, x86_64", ubuntuMirror, Query{Distribution: "Ubuntu", Release: "24.04", Arch: "x86_64", Serial: "latest", Variant: "server"}, want{
			noble + "ubuntu-24.04-server-cloudimg-amd64.img",
			"sha256:ac7b643065bda0d946845c20813cf3686d1aa4b2c4aff55e283b23aba297213f", "20241004", noble + "SHA256SUMS"}},
		{"ubuntu disk-kvm", ubuntuMirror, Query{Distribution: "ubuntu", Release: "noble", Variant: "disk-kvm"}, want{
			noble + "ubuntu-24.04-server-cloudimg-amd64-disk-kvm.img",
			"sha256:c8e0b4beea9e442aa49fc99841e56ab357d50059825f9e4adba63a8bac959818", "20241004", noble + "SHA256SUMS"}},
		{"ubuntu arm64 is one serial behind", ubuntuMirror, Query{Distribution: "ubuntu", Release: "noble", Arch: "arm64"}, want{
			"server/releases/noble/release-20240821/ubuntu-24.04-server-cloudimg-arm64.img",
			"sha256:eb13dfd874b647fc2200587e0b1d4821e3a6603b624ff3f10b19e5cb36ee8698", "20240821", "server/releases/noble/release-20240821/SHA256SUMS"}},
		{"ubuntu exact serial", ubuntuMirror, Query{Distribution: "ubuntu", Release: "noble", Serial: "20240821"}, want{
			"server/releases/noble/release-20240821/ubuntu-24.04-server-cloudimg-amd64.img",
			"sha256:2d52e3a4b5c2e102b38d78e33f6f2943cbf1260f5ca6902bd0b3ddef3796359b", "20240821", "server/releases/noble/release-20240821/SHA256SUMS"}},
		{"ubuntu jammy", ubuntuMirror, Query{Distribution: "ubuntu", Release: "jammy"}, want{
			"server/releases/jammy/release-20241002/ubuntu-22.04-server-cloudimg-amd64.img",
			"sha256:adec061d314b94e8638114e23dbff4931b0c1f8ea4cf6a338cf34c240eaec3b9", "20241002", "server/releases/jammy/release-20241002/SHA256SUMS"}},
		{"ubuntu oracular", ubuntuMirror, Query{Distribution: "ubuntu", Release: "oracular"}, want{
			"server/releases/oracular/release-20241009/ubuntu-24.10-server-cloudimg-amd64.img",
			"sha256:bd99768444092e73983f6303b6f53ea4ad93760eb41b908601f2ce81c6aabecf", "20241009", "server/releases/oracular/release-20241009/SHA256SUMS"}},

		{"ubuntu without simplestreams: newest release- directory", ubuntuDirsMirror, Query{Distribution: "ubuntu", Release: "noble"}, want{
			"noble/release-20241004/ubuntu-24.04-server-cloudimg-amd64.img",
			"sha256:ac7b643065bda0d946845c20813cf3686d1aa4b2c4aff55e283b23aba297213f", "20241004", "noble/release-20241004/SHA256SUMS"}},
		{"ubuntu without simplestreams: exact serial, disk-kvm", ubuntuDirsMirror, Query{Distribution: "ubuntu", Release: "noble", Serial: "20240821", Variant: "disk-kvm"}, want{
			"noble/release-20240821/ubuntu-24.04-server-cloudimg-amd64-disk-kvm.img",
			"sha256:" + sumOf(t, "ubuntu/noble-release-20240821.SHA256SUMS", "ubuntu-24.04-server-cloudimg-amd64-disk-kvm.img"), "20240821", "noble/release-20240821/SHA256SUMS"}},

		{"debian bookworm defaults", debianMirror, Query{Distribution: "debian", Release: "bookworm"}, want{
			bw + "debian-12-genericcloud-amd64-20241004-1894.qcow2",
			"sha512:" + sumOf(t, "debian/bookworm-20241004-1894.SHA512SUMS", "debian-12-genericcloud-amd64-20241004-1894.qcow2"), "20241004-1894", bw + "SHA512SUMS"}},
		{"debian 12 generic arm64", debianMirror, Query{Distribution: "debian", Release: "12", Arch: "aarch64", Variant: "generic"}, want{
			bw + "debian-12-generic-arm64-20241004-1894.qcow2",
			"sha512:" + sumOf(t, "debian/bookworm-20241004-1894.SHA512SUMS", "debian-12-generic-arm64-20241004-1894.qcow2"), "20241004-1894", bw + "SHA512SUMS"}},
		{"debian exact serial", debianMirror, Query{Distribution: "debian", Release: "bookworm", Serial: "20240901-1857"}, want{
			"bookworm/20240901-1857/debian-12-genericcloud-amd64-20240901-1857.qcow2",
			"sha512:" + sumOf(t, "debian/bookworm-20240901-1857.SHA512SUMS", "debian-12-genericcloud-amd64-20240901-1857.qcow2"), "20240901-1857", "bookworm/20240901-1857/SHA512SUMS"}},
		{"debian trixie", debianMirror, Query{Distribution: "debian", Release: "trixie"}, want{
			"trixie/20250820-2212/debian-13-genericcloud-amd64-20250820-2212.qcow2",
			"sha512:" + sumOf(t, "debian/trixie-20250820-2212.SHA512SUMS", "debian-13-genericcloud-amd64-20250820-2212.qcow2"), "20250820-2212", "trixie/20250820-2212/SHA512SUMS"}},
		{"debian trixie genericcloud arm64, like the e2e arm64 cell", debianMirror, Query{Distribution: "debian", Release: "trixie", Arch: "arm64"}, want{
			"trixie/20250820-2212/debian-13-genericcloud-arm64-20250820-2212.qcow2",
			"sha512:" + sumOf(t, "debian/trixie-20250820-2212.SHA512SUMS", "debian-13-genericcloud-arm64-20250820-2212.qcow2"), "20250820-2212", "trixie/20250820-2212/SHA512SUMS"}},
		{"debian backports", debianMirror, Query{Distribution: "debian", Release: "bookworm-backports"}, want{
			"bookworm-backports/20241004-1894/debian-12-backports-genericcloud-amd64-20241004-1894.qcow2",
			"sha512:" + sumOf(t, "debian/bookworm-backports-20241004-1894.SHA512SUMS", "debian-12-backports-genericcloud-amd64-20241004-1894.qcow2"), "20241004-1894", "bookworm-backports/20241004-1894/SHA512SUMS"}},
	}
}

func checkImage(t *testing.T, got *Image, base string, w want) {
	t.Helper()
	exp := Image{
		URL:         base + w.rel,
		Checksum:    w.checksum,
		Serial:      w.serial,
		Name:        w.rel[strings.LastIndex(w.rel, "/")+1:],
		ChecksumURL: base + w.checksumRel,
	}
	if *got != exp {
		t.Errorf("got  %+v\nwant %+v", *got, exp)
	}
}

func TestResolveHTTP(t *testing.T) {
	for _, c := range resolveCases(t) {
		t.Run(c.name, func(t *testing.T) {
			prefix := "/releases/"
			if c.q.Distribution == "debian" {
				prefix = "/images/cloud/"
			}
			s := serve(t, c.m, prefix)
			c.q.BaseURL = strings.TrimSuffix(s.base, "/") // a trailing slash is optional
			img, err := Resolve(context.Background(), c.q, s.Client())
			if err != nil {
				t.Fatal(err)
			}
			checkImage(t, img, s.base, c.want)
			for _, p := range s.paths() {
				if strings.Contains(p, "/latest/") || strings.Contains(p, "/daily/") || strings.HasSuffix(p, "/release/") {
					t.Errorf("read the moving alias %s", p)
				}
			}
		})
	}
}

func TestResolveLocal(t *testing.T) {
	for _, c := range resolveCases(t) {
		t.Run(c.name, func(t *testing.T) {
			root := local(t, c.m)
			base := "file://" + filepath.ToSlash(root) + "/"
			for _, b := range []string{base, root, strings.TrimSuffix(base, "/")} {
				q := c.q
				q.BaseURL = b
				img, err := Resolve(context.Background(), q, nil)
				if err != nil {
					t.Fatalf("base_url %s: %v", b, err)
				}
				checkImage(t, img, base, c.want)
			}
		})
	}
}

// A relative directory is taken from the working directory.
func TestResolveRelativeDirectory(t *testing.T) {
	root := local(t, debianMirror)
	t.Chdir(filepath.Dir(root))
	img, err := Resolve(context.Background(), Query{Distribution: "debian", Release: "bookworm", BaseURL: "./" + filepath.Base(root)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := "file://" + filepath.ToSlash(root) + "/bookworm/20241004-1894/debian-12-genericcloud-amd64-20241004-1894.qcow2"; img.URL != want {
		t.Errorf("url %s, want %s", img.URL, want)
	}
}

// The simplestreams route and the SHA256SUMS route find the same image.
func TestUbuntuRoutesAgree(t *testing.T) {
	for _, q := range []Query{
		{Distribution: "ubuntu", Release: "noble"},
		{Distribution: "ubuntu", Release: "noble", Serial: "20240821"},
		{Distribution: "ubuntu", Release: "noble", Variant: "disk-kvm"},
		{Distribution: "ubuntu", Release: "noble", Arch: "arm64"},
	} {
		var got [2]*Image
		for i, m := range []mirror{ubuntuMirror, ubuntuDirsMirror} {
			q.BaseURL = local(t, m)
			img, err := Resolve(context.Background(), q, nil)
			if err != nil {
				t.Fatalf("%+v: %v", q, err)
			}
			got[i] = img
		}
		if got[0].Serial != got[1].Serial || got[0].Checksum != got[1].Checksum || got[0].Name != got[1].Name {
			t.Errorf("%+v: simplestreams %+v, SHA256SUMS %+v", q, *got[0], *got[1])
		}
	}
}

// A release this package does not know is still found by name in the
// indexes.
func TestResolveUnknownCodename(t *testing.T) {
	index := `{"format": "products:1.0", "products": {
	  "com.ubuntu.cloud:server:27.04:amd64": {"arch": "amd64", "release": "zesty2", "version": "27.04", "versions": {
	    "20270501": {"items": {"disk1.img": {"ftype": "disk1.img", "path": "server/releases/zesty2/release-20270501/ubuntu-27.04-server-cloudimg-amd64.img",
	      "sha256": "` + strings.Repeat("ab", 32) + `", "size": 1}}}}}}}`
	root := t.TempDir()
	writeFile(t, filepath.Join(root, UbuntuStreamPath), index)
	img, err := Resolve(context.Background(), Query{Distribution: "ubuntu", Release: "zesty2", BaseURL: root}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if img.Serial != "20270501" || img.Name != "ubuntu-27.04-server-cloudimg-amd64.img" {
		t.Errorf("%+v", *img)
	}

	// Debian: the number in the file name is read from SHA512SUMS.
	droot := t.TempDir()
	name := "debian-16-genericcloud-amd64-20300101-1.qcow2"
	writeFile(t, filepath.Join(droot, "someday", "20300101-1", "SHA512SUMS"), strings.Repeat("0", 128)+"  "+name+"\n")
	img, err = Resolve(context.Background(), Query{Distribution: "debian", Release: "someday", BaseURL: droot}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if img.Serial != "20300101-1" || img.Name != name {
		t.Errorf("%+v", *img)
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fault serves fixed answers by path below /m/; anything else is a 404.
func fault(t *testing.T, answers map[string]func(w http.ResponseWriter)) string {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a, ok := answers[strings.TrimPrefix(r.URL.Path, "/m/")]; ok {
			a(w)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(s.Close)
	return s.URL + "/m/"
}

func body(s string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) { w.Write([]byte(s)) }
}

func TestResolveErrors(t *testing.T) {
	ub := serve(t, ubuntuMirror, "/releases/")
	deb := serve(t, debianMirror, "/images/cloud/")
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL + "/releases/"
	dead.Close()
	goodSums := string(fixture(t, "debian/bookworm-20241004-1894.SHA512SUMS"))
	listing := string(fixture(t, "debian/bookworm.html"))
	item := func(path, sha string) string {
		return `{"format": "products:1.0", "products": {"com.ubuntu.cloud:server:24.04:amd64": {"arch": "amd64", "release": "noble", "version": "24.04",
		  "versions": {"20241004": {"items": {"disk1.img": {"ftype": "disk1.img", "path": "` + path + `", "sha256": "` + sha + `"}}}}}}}`
	}
	okSHA := strings.Repeat("a", 64)

	cases := []struct {
		name string
		q    Query
		want []string // substrings of the message
	}{
		// Asked for something the index does not have.
		{"ubuntu unknown codename", Query{Distribution: "ubuntu", Release: "nobel", BaseURL: ub.base},
			[]string{`ubuntu nobel amd64 server, serial current, from ` + ub.base, ub.base + UbuntuStreamPath, `release "nobel" not found`, "amd64 releases in it: jammy, noble, oracular"}},
		{"ubuntu release of the other distribution", Query{Distribution: "ubuntu", Release: "bookworm", BaseURL: ub.base},
			[]string{`release: "bookworm" is a release of debian, not ubuntu`}},
		{"ubuntu unknown version number", Query{Distribution: "ubuntu", Release: "23.04", BaseURL: ub.base},
			[]string{`release: unknown ubuntu version "23.04"`}},
		{"ubuntu known release missing from the mirror", Query{Distribution: "ubuntu", Release: "focal", BaseURL: ub.base},
			[]string{`release "focal" not found`, ub.base + UbuntuStreamPath}},
		{"ubuntu serial not in the index", Query{Distribution: "ubuntu", Release: "noble", Serial: "20230101", BaseURL: ub.base},
			[]string{"serial 20230101 not found in com.ubuntu.cloud:server:24.04:amd64", "newest serials: 20241004, 20240821, 20240423"}},
		{"ubuntu variant absent for the arch", Query{Distribution: "ubuntu", Release: "noble", Arch: "arm64", Variant: "disk-kvm", BaseURL: ub.base},
			[]string{`no version of com.ubuntu.cloud:server:24.04:arm64 has a disk-kvm image (item ftype "disk-kvm.img")`}},
		{"ubuntu serial without the variant", Query{Distribution: "ubuntu", Release: "noble", Arch: "arm64", Variant: "disk-kvm", Serial: "20240821", BaseURL: ub.base},
			[]string{`serial 20240821 has no disk-kvm image`}},
		{"ubuntu no index and no directory", Query{Distribution: "ubuntu", Release: "jammy", BaseURL: serve(t, ubuntuDirsMirror, "/releases/").base},
			[]string{"no simplestreams index", UbuntuStreamPath + ": HTTP 404 Not Found", `release "jammy" not found`, "/releases/jammy/: HTTP 404"}},
		{"ubuntu dirs: serial not there", Query{Distribution: "ubuntu", Release: "noble", Serial: "20240423", BaseURL: serve(t, ubuntuDirsMirror, "/releases/").base},
			[]string{"serial 20240423 not found", "noble/release-20240423/SHA256SUMS: HTTP 404", "newest serials in", "/releases/noble/: 20241004, 20240821, 20240423"}},

		{"debian release not on the mirror", Query{Distribution: "debian", Release: "forky", BaseURL: deb.base},
			[]string{`debian forky amd64 genericcloud, serial current, from ` + deb.base, `release "forky" not found`, deb.base + "forky/: HTTP 404 Not Found"}},
		{"debian serial not on the mirror", Query{Distribution: "debian", Release: "bookworm", Serial: "20230101-1", BaseURL: deb.base},
			[]string{"serial 20230101-1 not found", deb.base + "bookworm/20230101-1/SHA512SUMS: HTTP 404", "newest serials in " + deb.base + "bookworm/: 20241004-1894, 20240901-1857, 20240717-1811"}},
		{"debian image not listed", Query{Distribution: "debian", Release: "bookworm", BaseURL: fault(t, map[string]func(http.ResponseWriter){
			"bookworm/": body(listing), "bookworm/20241004-1894/SHA512SUMS": body(strings.Repeat("1", 128) + "  debian-12-nocloud-amd64-20241004-1894.qcow2\n")})},
			[]string{"no genericcloud amd64 image in serial 20241004-1894", "bookworm/20241004-1894/SHA512SUMS does not list debian-12-genericcloud-amd64-20241004-1894.qcow2"}},
		{"debian no serial directory", Query{Distribution: "debian", Release: "bookworm", BaseURL: fault(t, map[string]func(http.ResponseWriter){
			"bookworm/": body(`<a href="latest/">latest/</a> <a href="daily/">daily/</a>`)})},
			[]string{"no serial directories (YYYYMMDD-NNNN/) listed in", "/m/bookworm/"}},

		// Bad input.
		{"unknown distribution", Query{Distribution: "fedora", Release: "40"}, []string{`fedora 40 amd64, serial current, from : distribution: unknown distribution "fedora"; supported: "ubuntu", "debian"`}},
		{"variant of the other distribution", Query{Distribution: "debian", Release: "bookworm", Variant: "server"}, []string{`variant: "server" is not one of the debian variants: "genericcloud", "generic"`}},
		{"arch", Query{Distribution: "debian", Release: "bookworm", Arch: "ppc64el"}, []string{`arch: unknown architecture "ppc64el"; supported: "amd64", "arm64"`}},
		{"serial shape", Query{Distribution: "debian", Release: "bookworm", Serial: "20241004"}, []string{`serial: "20241004" is not a debian serial`}},
		{"base_url scheme", Query{Distribution: "ubuntu", Release: "noble", BaseURL: "ftp://mirror/ubuntu"}, []string{`base_url: "ftp://mirror/ubuntu": unsupported scheme "ftp"`}},
		{"base_url file host", Query{Distribution: "ubuntu", Release: "noble", BaseURL: "file://mirror/ubuntu"}, []string{`base_url: "file://mirror/ubuntu": a file:// URL names a local directory`}},
		{"release missing", Query{Distribution: "ubuntu"}, []string{`release: required`}},

		// The mirror fails.
		{"unreachable", Query{Distribution: "ubuntu", Release: "noble", BaseURL: deadURL},
			[]string{"cannot reach the mirror", deadURL + UbuntuStreamPath}},
		{"server error", Query{Distribution: "debian", Release: "bookworm", BaseURL: fault(t, map[string]func(http.ResponseWriter){
			"bookworm/": func(w http.ResponseWriter) { http.Error(w, "overloaded", http.StatusServiceUnavailable) }})},
			[]string{"listing the serial directories: ", "/m/bookworm/: HTTP 503 Service Unavailable"}},
		{"malformed json", Query{Distribution: "ubuntu", Release: "noble", BaseURL: fault(t, map[string]func(http.ResponseWriter){
			UbuntuStreamPath: body(`<html>captive portal</html>`)})},
			[]string{"malformed index", "/m/" + UbuntuStreamPath, "not simplestreams JSON"}},
		{"json of another kind", Query{Distribution: "ubuntu", Release: "noble", BaseURL: fault(t, map[string]func(http.ResponseWriter){
			UbuntuStreamPath: body(`{"format": "index:1.0", "index": {}}`)})},
			[]string{"malformed index", `format "index:1.0", not products:1.0`}},
		{"item path escapes", Query{Distribution: "ubuntu", Release: "noble", BaseURL: fault(t, map[string]func(http.ResponseWriter){
			UbuntuStreamPath: body(item("server/../../etc/passwd", okSHA))})},
			[]string{"malformed index", "version 20241004 item disk1.img", `".." element`}},
		{"item path absolute", Query{Distribution: "ubuntu", Release: "noble", BaseURL: fault(t, map[string]func(http.ResponseWriter){
			UbuntuStreamPath: body(item("https://evil.example/x.img", okSHA))})},
			[]string{"malformed index", "not allowed in an image path"}},
		{"item sha256 short", Query{Distribution: "ubuntu", Release: "noble", BaseURL: fault(t, map[string]func(http.ResponseWriter){
			UbuntuStreamPath: body(item("server/x.img", "abc"))})},
			[]string{"malformed index", `sha256 "abc" is not 64 hex digits`}},
		{"sums malformed", Query{Distribution: "debian", Release: "bookworm", BaseURL: fault(t, map[string]func(http.ResponseWriter){
			"bookworm/": body(listing), "bookworm/20241004-1894/SHA512SUMS": body("-----BEGIN PGP SIGNED MESSAGE-----\n" + goodSums)})},
			[]string{"malformed", "/m/bookworm/20241004-1894/SHA512SUMS", "line 1 is not a 128-digit checksum line"}},
		{"sums of the wrong length", Query{Distribution: "debian", Release: "bookworm", Serial: "20241004-1894", BaseURL: fault(t, map[string]func(http.ResponseWriter){
			"bookworm/20241004-1894/SHA512SUMS": body(strings.Repeat("a", 64) + "  debian-12-genericcloud-amd64-20241004-1894.qcow2\n")})},
			[]string{"malformed", "line 1 is not a 128-digit checksum line"}},
		{"local directory missing", Query{Distribution: "debian", Release: "bookworm", BaseURL: filepath.Join(t.TempDir(), "nothing")},
			[]string{`release "bookworm" not found`, "nothing/bookworm: no such directory"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img, err := Resolve(context.Background(), c.q, nil)
			if err == nil {
				t.Fatalf("no error; got %+v", *img)
			}
			t.Log(err)
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\n  does not contain %q", err, w)
				}
			}
		})
	}
}

// A missing file is recognisable as such.
func TestNotFoundIsErrNotExist(t *testing.T) {
	_, err := Resolve(context.Background(), Query{Distribution: "debian", Release: "bookworm", Serial: "20200101-1", BaseURL: t.TempDir()}, nil)
	if !strings.Contains(err.Error(), "serial 20200101-1 not found") {
		t.Errorf("%v", err)
	}
	src, _ := newSource(t.TempDir(), nil)
	if _, err := src.get(context.Background(), "x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("local: %v", err)
	}
	s := serve(t, mirror{}, "/")
	src, _ = newSource(s.base, s.Client())
	if _, err := src.get(context.Background(), "x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("http: %v", err)
	}
}

func TestResolveHonoursContext(t *testing.T) {
	block := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer s.Close()
	defer close(block)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Resolve(ctx, Query{Distribution: "ubuntu", Release: "noble", BaseURL: s.URL}, s.Client())
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err %v, want a deadline error", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
}

// ErrUnreachable tells a mirror that cannot be reached from one that
// answers badly.
func TestErrUnreachable(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	status := func(code int) string {
		return fault(t, map[string]func(http.ResponseWriter){
			"bookworm/": func(w http.ResponseWriter) { http.Error(w, "x", code) }})
	}
	hang := make(chan struct{})
	defer close(hang)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	cases := []struct {
		base        string
		unreachable bool
	}{
		{dead.URL, true},
		{status(http.StatusBadGateway), true},
		{status(http.StatusServiceUnavailable), true},
		{status(http.StatusGatewayTimeout), true},
		{slow.URL, true},
		{status(http.StatusNotFound), false},
		{status(http.StatusInternalServerError), false},
		{status(http.StatusForbidden), false},
		{fault(t, map[string]func(http.ResponseWriter){"bookworm/": body("<html></html>")}), false},
		{t.TempDir(), false},
	}
	for _, c := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, err := Resolve(ctx, Query{Distribution: "debian", Release: "bookworm", BaseURL: c.base}, nil)
		cancel()
		if err == nil || errors.Is(err, ErrUnreachable) != c.unreachable {
			t.Errorf("%s: unreachable %v, want %v: %v", c.base, errors.Is(err, ErrUnreachable), c.unreachable, err)
		}
	}
}
