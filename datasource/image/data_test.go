package image

import (
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/imagesource"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/unknown"
)

func TestConfigure(t *testing.T) {
	cases := []struct {
		name string
		raw  map[string]interface{}
		want []string // substrings of the error; none: valid
	}{
		{"ubuntu minimal", map[string]interface{}{"distribution": "ubuntu", "release": "noble"}, nil},
		{"debian everything", map[string]interface{}{
			"distribution": "debian", "release": "bookworm", "arch": "arm64", "serial": "20241004-1894",
			"variant": "generic", "base_url": "https://mirror.example/debian-cloud/", "timeout": "30s",
		}, nil},
		{"local directory", map[string]interface{}{"distribution": "debian", "release": "trixie", "base_url": "./mirror"}, nil},
		{"missing both", map[string]interface{}{}, []string{"distribution: required", "release: required"}},
		{"unknown distribution", map[string]interface{}{"distribution": "fedora", "release": "40"}, []string{`distribution: unknown distribution "fedora"`}},
		{"variant of the other distribution", map[string]interface{}{"distribution": "ubuntu", "release": "noble", "variant": "genericcloud"},
			[]string{`variant: "genericcloud" is not one of the ubuntu variants: "server", "disk-kvm"`}},
		{"arch", map[string]interface{}{"distribution": "ubuntu", "release": "noble", "arch": "s390x"}, []string{`arch: unknown architecture "s390x"`}},
		{"release of the other distribution", map[string]interface{}{"distribution": "debian", "release": "jammy"}, []string{`release: "jammy" is a release of ubuntu, not debian`}},
		{"serial shape", map[string]interface{}{"distribution": "ubuntu", "release": "noble", "serial": "2024-10-04"}, []string{`serial: "2024-10-04" is not an ubuntu serial`}},
		{"base_url", map[string]interface{}{"distribution": "ubuntu", "release": "noble", "base_url": "s3://bucket/x"}, []string{`base_url: "s3://bucket/x": unsupported scheme "s3"`}},
		{"timeout", map[string]interface{}{"distribution": "ubuntu", "release": "noble", "timeout": "-1s"}, []string{"timeout: must be positive"}},
		{"fallback", map[string]interface{}{"distribution": "ubuntu", "release": "noble", "fallback_url": "https://x/a.img", "fallback_checksum": "sha256:00", "fallback_serial": "20241004"}, nil},
		{"fallback_url alone", map[string]interface{}{"distribution": "ubuntu", "release": "noble", "fallback_url": "https://x/a.img"}, []string{"fallback_checksum: required with fallback_url"}},
		{"fallback_checksum alone", map[string]interface{}{"distribution": "ubuntu", "release": "noble", "fallback_checksum": "sha256:00"}, []string{"fallback_url: required with fallback_checksum"}},
		{"fallback_serial alone", map[string]interface{}{"distribution": "ubuntu", "release": "noble", "fallback_serial": "1"}, []string{"fallback_serial: only used with fallback_url"}},
		{"unknown option", map[string]interface{}{"distribution": "ubuntu", "release": "noble", "iso_url": "x"}, []string{"iso_url"}},
		// packer validate passes "<unknown>" for another data source's output.
		{"unknown values", map[string]interface{}{"distribution": "ubuntu", "release": unknown.Value, "serial": unknown.Value, "base_url": unknown.Value}, nil},
		{"unknown distribution value", map[string]interface{}{"distribution": unknown.Value, "release": "bookworm", "variant": "generic"}, nil},
		{"unknown values do not hide the others", map[string]interface{}{"distribution": "ubuntu", "release": unknown.Value, "arch": "mips"}, []string{"arch: "}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var d Datasource
			err := d.Configure(c.raw)
			if len(c.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\n  does not contain %q", err, w)
				}
			}
		})
	}
}

func TestConfigureDefaults(t *testing.T) {
	var d Datasource
	if err := d.Configure(map[string]interface{}{"distribution": "debian", "release": "bookworm"}); err != nil {
		t.Fatal(err)
	}
	if d.config.Timeout != DefaultTimeout {
		t.Errorf("timeout %v", d.config.Timeout)
	}
	q := d.query()
	want := imagesource.Query{Distribution: "debian", Release: "bookworm", Arch: "amd64", Serial: "current", Variant: "genericcloud", BaseURL: imagesource.DefaultDebianBaseURL}
	if q != want {
		t.Errorf("query %+v, want %+v", q, want)
	}
}

// Execute against a mirror served by httptest, shaped like
// cloud-images.ubuntu.com/releases/.
func TestExecute(t *testing.T) {
	index, err := os.ReadFile("../../internal/imagesource/testdata/ubuntu/released-download.json")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/releases/"+imagesource.UbuntuStreamPath {
			http.NotFound(w, r)
			return
		}
		w.Write(index)
	}))
	defer srv.Close()

	d := Datasource{client: srv.Client()}
	if err := d.Configure(map[string]interface{}{"distribution": "ubuntu", "release": "noble", "base_url": srv.URL + "/releases"}); err != nil {
		t.Fatal(err)
	}
	v, err := d.Execute()
	if err != nil {
		t.Fatal(err)
	}
	dir := srv.URL + "/releases/server/releases/noble/release-20241004/"
	want := cty.ObjectVal(map[string]cty.Value{
		"url":          cty.StringVal(dir + "ubuntu-24.04-server-cloudimg-amd64.img"),
		"checksum":     cty.StringVal("sha256:ac7b643065bda0d946845c20813cf3686d1aa4b2c4aff55e283b23aba297213f"),
		"serial":       cty.StringVal("20241004"),
		"name":         cty.StringVal("ubuntu-24.04-server-cloudimg-amd64.img"),
		"checksum_url": cty.StringVal(dir + "SHA256SUMS"),
	})
	if !v.RawEquals(want) {
		t.Errorf("got  %#v\nwant %#v", v, want)
	}
	// The value has the type OutputSpec promises.
	if !v.Type().Equals(cty.Object(map[string]cty.Type{
		"url": cty.String, "checksum": cty.String, "serial": cty.String, "name": cty.String, "checksum_url": cty.String,
	})) {
		t.Errorf("type %#v", v.Type())
	}

	// An exact serial that is not there: the message names it and the index.
	d = Datasource{client: srv.Client()}
	if err := d.Configure(map[string]interface{}{"distribution": "ubuntu", "release": "noble", "serial": "20200101", "base_url": srv.URL + "/releases"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Execute(); err == nil || !strings.Contains(err.Error(), "serial 20200101 not found") || !strings.Contains(err.Error(), srv.URL+"/releases/"+imagesource.UbuntuStreamPath) {
		t.Errorf("error %v", err)
	}
}

func TestExecuteTimeout(t *testing.T) {
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(hang)
	d := Datasource{client: srv.Client()}
	if err := d.Configure(map[string]interface{}{"distribution": "debian", "release": "bookworm", "base_url": srv.URL, "timeout": "200ms"}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := d.Execute()
	if err == nil || !strings.Contains(err.Error(), "(timeout 200ms)") {
		t.Errorf("error %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
}

func TestOutputSpec(t *testing.T) {
	var keys []string
	for k := range new(Datasource).OutputSpec() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if got := strings.Join(keys, " "); got != "checksum checksum_url name serial url" {
		t.Errorf("output keys: %s", got)
	}
}

// The fallback is output when the mirror cannot be reached, and only then.
func TestExecuteFallback(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	proxyDown := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "ERR_DNS_FAIL", http.StatusServiceUnavailable)
	}))
	defer proxyDown.Close()

	const pinned = "https://cloud-images.ubuntu.com/releases/noble/release-20241004/ubuntu-24.04-server-cloudimg-amd64.img"
	configure := func(base string, extra map[string]interface{}) *Datasource {
		t.Helper()
		raw := map[string]interface{}{"distribution": "ubuntu", "release": "noble", "base_url": base, "timeout": "5s"}
		for k, v := range extra {
			raw[k] = v
		}
		d := new(Datasource)
		if err := d.Configure(raw); err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, c := range []struct {
		name     string
		base     string
		checksum string
		want     map[string]string
	}{
		{"no connection, file: checksum", deadURL, "file:https://cloud-images.ubuntu.com/releases/noble/release-20241004/SHA256SUMS", map[string]string{
			"url": pinned, "checksum": "file:https://cloud-images.ubuntu.com/releases/noble/release-20241004/SHA256SUMS", "serial": "20241004",
			"name": "ubuntu-24.04-server-cloudimg-amd64.img", "checksum_url": "https://cloud-images.ubuntu.com/releases/noble/release-20241004/SHA256SUMS"}},
		{"proxy 503, literal checksum", proxyDown.URL, "sha256:" + strings.Repeat("a", 64), map[string]string{
			"url": pinned, "checksum": "sha256:" + strings.Repeat("a", 64), "serial": "20241004",
			"name": "ubuntu-24.04-server-cloudimg-amd64.img", "checksum_url": ""}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := configure(c.base, map[string]interface{}{"fallback_url": pinned, "fallback_checksum": c.checksum, "fallback_serial": "20241004"})
			v, err := d.Execute()
			if err != nil {
				t.Fatal(err)
			}
			for k, w := range c.want {
				if got := v.GetAttr(k).AsString(); got != w {
					t.Errorf("%s = %q, want %q", k, got, w)
				}
			}
		})
	}
	// Without a fallback, the same failure is an error.
	if _, err := configure(deadURL, nil).Execute(); err == nil || !strings.Contains(err.Error(), "cannot reach the mirror") {
		t.Errorf("no fallback: %v", err)
	}
	// A mirror that answers is never replaced by the fallback.
	_, err := configure(notFound.URL, map[string]interface{}{"fallback_url": pinned, "fallback_checksum": "sha256:00"}).Execute()
	if err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Errorf("404 with a fallback: %v", err)
	}
}
