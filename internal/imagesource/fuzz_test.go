package imagesource

import (
	"strings"
	"testing"
)

// The parsers read what a mirror sends: whatever it is, they return a value
// or an error, never panic, and what they return is well-formed.

func FuzzParseSimplestreams(f *testing.F) {
	f.Add(fixture(f, "ubuntu/released-download.json"))
	f.Add([]byte(`{"format": "products:1.0", "products": {"com.ubuntu.cloud:server:24.04:amd64": {"arch": "amd64", "release": "noble", "versions": {"20241004": {"items": {"disk1.img": {"path": "a/b.img", "sha256": "` + strings.Repeat("0", 64) + `"}}}}}}}`))
	f.Add([]byte(`{"products": {"x": null}}`))
	f.Add([]byte(`{"products": {"x": {"versions": {"1": {"items": null}}}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ss, err := parseSimplestreams(data)
		if err != nil {
			return
		}
		for _, rel := range []release{{codename: "noble", version: "24.04", known: true}, {codename: "x"}} {
			_, p, err := ss.product(rel, "amd64")
			if err != nil {
				continue
			}
			for s, v := range p.Versions {
				_ = compareSerials(s, "20241004")
				if _, it, ok := v.item("disk1.img"); ok {
					_ = safeRel(it.Path)
				}
			}
		}
	})
}

func FuzzParseSums(f *testing.F) {
	f.Add(fixture(f, "ubuntu/noble-release-20241004.SHA256SUMS"), 64)
	f.Add(fixture(f, "debian/bookworm-20241004-1894.SHA512SUMS"), 128)
	f.Add([]byte(strings.Repeat("a", 64)+"  x\r\n\n"+strings.Repeat("b", 64)+" *y"), 64)
	f.Fuzz(func(t *testing.T, data []byte, hexLen int) {
		sums, err := parseSums(data, hexLen)
		if err != nil {
			return
		}
		if len(sums) == 0 {
			t.Fatal("no sums and no error")
		}
		for name, d := range sums {
			if name == "" || len(d) != hexLen || !isHex(d) || strings.ToLower(d) != d {
				t.Fatalf("%q: %q", name, d)
			}
		}
	})
}

func FuzzParseListing(f *testing.F) {
	f.Add(fixture(f, "debian/bookworm.html"))
	f.Add(fixture(f, "ubuntu/noble.html"))
	f.Add([]byte(`<a href=x/><a href='y/'><a href="%zz/"><a href="https://[::1/x/">`))
	f.Add([]byte(`href=`))
	f.Fuzz(func(t *testing.T, page []byte) {
		for _, name := range parseListing(page) {
			if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\") {
				t.Fatalf("bad name %q", name)
			}
		}
	})
}

func FuzzCompareSerials(f *testing.F) {
	f.Add("20241004", "20241004.1")
	f.Add("20241004-1894", "20240901-1857")
	f.Add("", "0")
	f.Fuzz(func(t *testing.T, a, b string) {
		ab, ba := compareSerials(a, b), compareSerials(b, a)
		if ab != -ba || (ab == 0) != (a == b) {
			t.Fatalf("compareSerials(%q, %q) = %d, reverse %d", a, b, ab, ba)
		}
	})
}
