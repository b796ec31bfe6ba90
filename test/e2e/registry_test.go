//go:build e2e

package e2e

// The OCI registry side of the end-to-end tests (issue #22): registries the
// tests start on 127.0.0.1 and stop by PID, a fault proxy in front of them,
// and independent clients (the oras CLI built by `make tools`, Debian's
// skopeo, GNU tar) that judge what the plugin pushed.
//
//   - startRegistry: CNCF Distribution 2.8 (Debian's docker-registry) with
//     its own loopback config, htpasswd auth (bcrypt) and TLS from a CA the
//     test makes; deletion enabled or not. It has no referrers API, so
//     clients use the referrers tag schema (sha256-<hex>) there.
//   - startReferrersRegistry: go-containerregistry's in-process registry
//     with the OCI 1.1 referrers API, over plain HTTP.
//   - startFaultProxy: a TCP byte pipe that cuts or stalls after N bytes.
//
// Credentials never appear on a command line or in the kept work directory:
// clients get them in auth files under t.TempDir (removed after the test),
// the registry only has their bcrypt hash.

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"golang.org/x/crypto/bcrypt"
)

// Media types the checks below name (OCI image-spec v1.1).
const (
	ociManifestType = "application/vnd.oci.image.manifest.v1+json"
	ociIndexType    = "application/vnd.oci.image.index.v1+json"
	ociConfigType   = "application/vnd.oci.image.config.v1+json"
	ociLayerTarType = "application/vnd.oci.image.layer.v1.tar"
)

const (
	// containerDiskOwner is the owner of a containerDisk's file as
	// `tar --numeric-owner -tv` prints it: KubeVirt's qemu user and group.
	containerDiskOwner = "107/107"
	// registryStartLimit bounds the wait for a started registry to answer.
	registryStartLimit = 60 * time.Second
	// registryStopGrace is how long a registry has between SIGTERM and SIGKILL.
	registryStopGrace = 10 * time.Second
	// registryLogTailSize is how many lines of a registry's log a failed
	// test shows.
	registryLogTailSize = 40
)

// testRegistry is a registry a test started on 127.0.0.1, as a client sees
// it. Copies made by via and withPassword name the same registry through
// another address or with other credentials.
type testRegistry struct {
	// Host is the address clients use, "127.0.0.1:port" (a fault proxy's
	// address in a copy made by via).
	Host string
	// PlainHTTP is true when the registry speaks plain HTTP (clients then
	// need oras --plain-http, skopeo --src-tls-verify=false, the plugin's
	// plain_http = true).
	PlainHTTP bool
	// CAFile is the PEM certificate of the CA that signed the registry's
	// certificate (IP SAN 127.0.0.1, DNS SANs localhost and
	// proxiedRegistryName); "" with PlainHTTP.
	CAFile string
	// CertDir is a directory holding only ca.crt (CAFile's content), the
	// layout of skopeo's --src-cert-dir and containers' certs.d; "" with
	// PlainHTTP.
	CertDir string
	// User and Password are the htpasswd credentials (Password is random per
	// registry, "pw-" and 32 hex digits, so that a grep for it is
	// meaningful); both "" when the registry has no auth.
	User, Password string
	// Dir holds the registry's config, certificates, htpasswd, storage and
	// log; kept after the run.
	Dir string
	// LogPath is the registry's log (Distribution's stderr, or one line per
	// request for the in-process registry).
	LogPath string
	// Delete reports whether the registry allows deletion.
	Delete bool
	// ClientEnv is extra environment ("K=V") for client tools that reach
	// the registry this way (HTTPS_PROXY in a copy made by viaConnectProxy).
	ClientEnv []string
}

// registryOpts configures startRegistry.
type registryOpts struct {
	// Delete enables Distribution's storage.delete: without it a DELETE of
	// a manifest or blob is answered 405 UNSUPPORTED (as Docker Hub and
	// GHCR refuse deletion through the API).
	Delete bool
}

// Ref is the reference of repo at tagOrDigest in this registry:
// Host/repo:tag, or Host/repo@sha256:… when tagOrDigest is a digest, or
// Host/repo when it is "".
func (r *testRegistry) Ref(repo, tagOrDigest string) string {
	switch {
	case tagOrDigest == "":
		return r.Host + "/" + repo
	case strings.HasPrefix(tagOrDigest, "sha256:"):
		return r.Host + "/" + repo + "@" + tagOrDigest
	default:
		return r.Host + "/" + repo + ":" + tagOrDigest
	}
}

// via returns a copy of r that clients reach through addr (a fault proxy's
// address): same CA, credentials and storage. The registry's certificate is
// for 127.0.0.1, so TLS still verifies through a proxy on 127.0.0.1.
func (r *testRegistry) via(addr string) *testRegistry {
	c := *r
	c.Host = addr
	return &c
}

// viaConnectProxy returns a copy of r that clients reach by
// proxiedRegistryName through p: Host is p.Host and ClientEnv sets
// HTTPS_PROXY (and clears NO_PROXY) for the client tools; give a Packer
// run the same variables.
func (r *testRegistry) viaConnectProxy(p *connectProxy) *testRegistry {
	c := *r
	c.Host = p.Host
	c.ClientEnv = append(append([]string(nil), r.ClientEnv...), "HTTPS_PROXY="+p.URL, "https_proxy="+p.URL, "NO_PROXY=", "no_proxy=")
	return &c
}

// withPassword returns a copy of r whose clients send password instead of
// the right one (the registry still has only the right one).
func (r *testRegistry) withPassword(password string) *testRegistry {
	c := *r
	c.Password = password
	return &c
}

// authJSON is the "auths" document that Docker's config.json and
// containers' auth.json share, with r's credentials for r.Host and every
// extra host.
func (r *testRegistry) authJSON(extraHosts ...string) []byte {
	auths := map[string]map[string]string{}
	if r.User != "" {
		for _, h := range append([]string{r.Host}, extraHosts...) {
			auths[h] = map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(r.User + ":" + r.Password))}
		}
	}
	b, _ := json.MarshalIndent(map[string]any{"auths": auths}, "", "  ")
	return append(b, '\n')
}

// DockerConfigDir writes a Docker config.json holding r's credentials for
// r.Host (and extraHosts, e.g. a proxy's address) into a new directory
// under t.TempDir (removed after the test) and returns the directory: the
// value for DOCKER_CONFIG.
func (r *testRegistry) DockerConfigDir(t testing.TB, extraHosts ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), r.authJSON(extraHosts...), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// AuthFile writes a containers auth.json holding r's credentials for r.Host
// (and extraHosts) under t.TempDir (removed after the test) and returns its
// path: the value for REGISTRY_AUTH_FILE, skopeo's --authfile and oras's
// --registry-config.
func (r *testRegistry) AuthFile(t testing.TB, extraHosts ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(p, r.authJSON(extraHosts...), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// LogMatches reports whether the registry's log so far matches the regular
// expression re.
func (r *testRegistry) LogMatches(re string) bool {
	b, _ := os.ReadFile(r.LogPath)
	return regexp.MustCompile(re).Match(b)
}

// startRegistry starts CNCF Distribution (Debian's docker-registry, 2.8) on
// 127.0.0.1 at a free port with a config of its own (never the package's,
// which listens on every interface): filesystem storage under the
// registry's directory, htpasswd auth for a random password (bcrypt), TLS
// with a certificate from a CA made for this registry, deletion as opts
// says. It returns once GET https://Host/v2/ answers 401 (verified with the
// CA), and stops the registry in t.Cleanup (SIGTERM, SIGKILL after
// registryStopGrace), logging its log's tail if the test failed.
func startRegistry(t testing.TB, opts registryOpts) *testRegistry {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Fatalf("docker-registry (Debian package docker-registry) is not installed: run make deps (%v)", err)
	}
	dir := testDir(t)
	r := &testRegistry{
		Dir:      dir,
		LogPath:  filepath.Join(dir, "registry.log"),
		User:     "cloudimg",
		Password: "pw-" + randHex(16),
		CAFile:   filepath.Join(dir, "ca.crt"),
		CertDir:  filepath.Join(dir, "certs.d"),
		Delete:   opts.Delete,
	}
	certFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := writeTestCA(r.CAFile, certFile, keyFile); err != nil {
		t.Fatalf("registry certificates: %v", err)
	}
	if err := os.MkdirAll(r.CertDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.CertDir, "ca.crt"), mustReadFile(t, r.CAFile), 0o644); err != nil {
		t.Fatal(err)
	}
	// Distribution checks the password against the hash on every request:
	// the cheapest cost keeps that out of the timings (a test secret).
	hash, err := bcrypt.GenerateFromPassword([]byte(r.Password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(r.User+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	storage := filepath.Join(dir, "storage")
	if err := os.MkdirAll(storage, 0o755); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(mustReadFile(t, r.CAFile))
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	defer client.CloseIdleConnections()

	// The free port is found by binding it and letting it go; another
	// process may take it meanwhile, so a start that fails to bind is tried
	// again with a new port.
	for attempt := 1; ; attempt++ {
		port, err := freeLoopbackPort()
		if err != nil {
			t.Fatal(err)
		}
		r.Host = fmt.Sprintf("127.0.0.1:%d", port)
		config := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(config, []byte(distributionConfig(r.Host, storage, certFile, keyFile, htpasswd, opts.Delete)), 0o644); err != nil {
			t.Fatal(err)
		}
		proc, err := startRegistryProcess(t, bin, config, r.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		err = waitRegistryReady(client, "https://"+r.Host+"/v2/", http.StatusUnauthorized, proc.done)
		if err == nil {
			t.Cleanup(func() {
				proc.stop(t)
				if t.Failed() {
					t.Logf("registry %s log (%s), last %d lines:\n%s", r.Host, r.LogPath, registryLogTailSize, tailFile(r.LogPath, registryLogTailSize))
				}
			})
			t.Logf("registry: Distribution at https://%s (pid %d, deletion %v, dir %s)", r.Host, proc.cmd.Process.Pid, opts.Delete, dir)
			return r
		}
		proc.stop(t)
		if attempt < 3 && strings.Contains(tailFile(r.LogPath, registryLogTailSize), "address already in use") {
			continue
		}
		t.Fatalf("registry at %s did not become ready: %v; log %s:\n%s", r.Host, err, r.LogPath, tailFile(r.LogPath, registryLogTailSize))
	}
}

// distributionConfig is a Distribution 2.8 configuration listening on addr
// only, with TLS, htpasswd auth and filesystem storage.
func distributionConfig(addr, storage, certFile, keyFile, htpasswd string, deleteEnabled bool) string {
	return fmt.Sprintf(`version: 0.1
log:
  level: info
  formatter: text
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: %t
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %q
  secret: %q
  tls:
    certificate: %q
    key: %q
auth:
  htpasswd:
    realm: cloudimg-e2e
    path: %q
`, storage, deleteEnabled, addr, randHex(16), certFile, keyFile, htpasswd)
}

// registryProc is a registry process the test started.
type registryProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
	once sync.Once
}

// startRegistryProcess starts `bin serve config` with stdout and stderr
// appended to logPath and no REGISTRY_* variables in its environment
// (Distribution reads every REGISTRY_<KEY> as a config override, and
// containers' REGISTRY_AUTH_FILE is one of them).
func startRegistryProcess(t testing.TB, bin, config, logPath string) (*registryProc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") && !strings.HasPrefix(kv, "OTEL_") {
			env = append(env, kv)
		}
	}
	cmd := exec.Command(bin, "serve", config)
	cmd.Env = env
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s serve %s: %w", bin, config, err)
	}
	p := &registryProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// stop sends SIGTERM, then SIGKILL after registryStopGrace, and waits for
// the process to exit.
func (p *registryProc) stop(t testing.TB) {
	p.once.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(registryStopGrace):
			t.Logf("registry pid %d did not stop within %s of SIGTERM; killing it", p.cmd.Process.Pid, registryStopGrace)
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
}

// waitRegistryReady polls url until it answers want, the process exits
// (exited is closed) or registryStartLimit passes.
func waitRegistryReady(client *http.Client, url string, want int, exited <-chan struct{}) error {
	deadline := time.Now().Add(registryStartLimit)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		resp, err := client.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
			last = fmt.Errorf("GET %s: %s, want %d", url, resp.Status, want)
		} else {
			last = err
		}
		select {
		case <-exited:
			return fmt.Errorf("the registry exited (last probe: %v)", last)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %s (last probe: %v)", registryStartLimit, last)
		}
	}
}

// freeLoopbackPort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// writeTestCA makes a CA (ECDSA P-256, valid one day) and a server
// certificate signed by it for IP 127.0.0.1 and DNS localhost and
// proxiedRegistryName, and writes
// the CA certificate, the server certificate and its key (PKCS#8) as PEM.
func writeTestCA(caFile, certFile, keyFile string) error {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "cloudimg e2e test CA " + randHex(4)},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost", proxiedRegistryName},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		path, typ string
		der       []byte
		mode      os.FileMode
	}{
		{caFile, "CERTIFICATE", caDER, 0o644},
		{certFile, "CERTIFICATE", der, 0o644},
		{keyFile, "PRIVATE KEY", keyDER, 0o600},
	} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), f.mode); err != nil {
			return err
		}
	}
	return nil
}

// startReferrersRegistry starts go-containerregistry's in-process registry
// (pkg/registry, v0.22.1) with the OCI 1.1 referrers API, on 127.0.0.1 over
// plain HTTP and without auth (User and Password are ""), blobs on disk
// under its directory (uploads are still buffered in memory), one log line
// per request in LogPath. It is stopped in t.Cleanup.
//
// go-containerregistry v0.22.1 falls short of distribution-spec v1.1.1 in
// three ways that a small wrapper (referrersFix) makes up for, so that the
// registry answers as Harbor and zot do: it sends no OCI-Subject header
// when it accepts a manifest with a subject (oras-go v2.7.0 decides from
// that header alone whether the registry serves the referrers API, and
// without it falls back to the tag schema); it reports each referrer's
// artifactType as its config's media type even when the manifest has an
// artifactType of its own (as oras attach and every OCI 1.1 client write
// it); and it ignores the artifactType filter.
func startReferrersRegistry(t testing.TB) *testRegistry {
	t.Helper()
	dir := testDir(t)
	r := &testRegistry{
		Dir:       dir,
		LogPath:   filepath.Join(dir, "registry.log"),
		PlainHTTP: true,
		Delete:    true,
	}
	blobs := filepath.Join(dir, "blobs")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(r.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	logger := log.New(logf, "", log.LstdFlags|log.Lmicroseconds)
	inner := ggcrregistry.New(
		ggcrregistry.Logger(logger),
		ggcrregistry.WithReferrersSupport(true),
		ggcrregistry.WithBlobHandler(ggcrregistry.NewDiskBlobHandler(blobs)),
	)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(referrersFix(inner))
	srv.Listener.Close()
	srv.Listener = l
	srv.Config.ErrorLog = logger
	srv.Start()
	r.Host = l.Addr().String()
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		logf.Close()
		if t.Failed() {
			t.Logf("referrers registry %s log (%s), last %d lines:\n%s", r.Host, r.LogPath, registryLogTailSize, tailFile(r.LogPath, registryLogTailSize))
		}
	})
	t.Logf("registry: go-containerregistry with the referrers API at http://%s (dir %s)", r.Host, dir)
	return r
}

var (
	referrersPath = regexp.MustCompile(`^/v2/(.+)/referrers/([^/]+)$`)
	manifestsPath = regexp.MustCompile(`^/v2/(.+)/manifests/([^/]+)$`)
)

// referrersFix wraps go-containerregistry's handler: a manifest PUT that
// the registry accepts gets the OCI-Subject header when the manifest has a
// subject; in the answers of GET /v2/<name>/referrers/<digest> each
// manifest's own artifactType (where it has one) replaces its config's
// media type, and the artifactType query filter is applied.
func referrersFix(inner http.Handler) http.Handler {
	replay := func(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodPut && manifestsPath.MatchString(req.URL.Path) {
			body, err := io.ReadAll(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			req.Body = io.NopCloser(bytes.NewReader(body))
			rec := httptest.NewRecorder()
			inner.ServeHTTP(rec, req)
			var man struct {
				Subject *struct {
					Digest string `json:"digest"`
				} `json:"subject"`
			}
			if rec.Code == http.StatusCreated && json.Unmarshal(body, &man) == nil && man.Subject != nil {
				rec.Header().Set("OCI-Subject", man.Subject.Digest)
			}
			replay(w, rec)
			return
		}
		m := referrersPath.FindStringSubmatch(req.URL.Path)
		if req.Method != http.MethodGet || m == nil {
			inner.ServeHTTP(w, req)
			return
		}
		rec := httptest.NewRecorder()
		inner.ServeHTTP(rec, req)
		var idx map[string]any
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &idx) != nil {
			replay(w, rec)
			return
		}
		list, _ := idx["manifests"].([]any)
		filter := req.URL.Query().Get("artifactType")
		kept := []any{}
		for _, e := range list {
			d, ok := e.(map[string]any)
			if !ok {
				continue
			}
			digest, _ := d["digest"].(string)
			mrec := httptest.NewRecorder()
			mreq := httptest.NewRequest(http.MethodGet, "/v2/"+m[1]+"/manifests/"+digest, nil)
			inner.ServeHTTP(mrec, mreq)
			var man struct {
				ArtifactType string `json:"artifactType"`
			}
			if mrec.Code == http.StatusOK && json.Unmarshal(mrec.Body.Bytes(), &man) == nil && man.ArtifactType != "" {
				d["artifactType"] = man.ArtifactType
			}
			if filter != "" && d["artifactType"] != filter {
				continue
			}
			kept = append(kept, d)
		}
		idx["manifests"] = kept
		b, _ := json.Marshal(idx)
		if filter != "" {
			w.Header().Set("OCI-Filters-Applied", "artifactType")
		}
		w.Header().Set("Content-Type", ociIndexType)
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(b)
	})
}

// faultKind is what a fault proxy does once its byte budget is spent.
type faultKind int

const (
	// faultNone forwards everything (and counts what clients send).
	faultNone faultKind = iota
	// faultCut forwards the first After bytes clients send (over all
	// connections), then resets every connection, and every later one as
	// soon as it is accepted: the registry is gone mid-upload.
	faultCut
	// faultStall forwards the first After bytes clients send, then stops
	// forwarding in both directions on every connection and accepts new
	// connections without answering, keeping them all open: the registry
	// hangs.
	faultStall
)

// String names the kind for logs.
func (k faultKind) String() string {
	switch k {
	case faultNone:
		return "none"
	case faultCut:
		return "cut"
	case faultStall:
		return "stall"
	}
	return fmt.Sprintf("faultKind(%d)", int(k))
}

// faultMode configures a fault proxy.
type faultMode struct {
	Kind faultKind
	// After is the number of bytes sent client→server, summed over all
	// connections, that pass before the fault.
	After int64
}

// faultProxy is a TCP proxy on 127.0.0.1 in front of a registry: a byte
// pipe (TLS passes through unchanged, so clients still verify the
// registry's certificate) that injects a fault after a number of bytes.
type faultProxy struct {
	// Addr is where clients connect, "127.0.0.1:port".
	Addr   string
	target string
	ln     net.Listener

	mu      sync.Mutex
	mode    faultMode
	sent    int64
	tripped chan struct{} // closed when the fault happens
	isTrip  bool
	tripAt  time.Time
	healed  chan struct{} // replaced by heal; closed to release stalled pipes
	closed  bool
	done    chan struct{} // closed by the cleanup
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
	dialErr error
}

// startFaultProxy starts a fault proxy on 127.0.0.1 in front of target
// ("host:port") and closes its listener and every connection in t.Cleanup.
// The byte count is exact and the fault happens at the same byte on every
// run, whatever the connections. Use reg.via(p.Addr) to reach a
// testRegistry through it.
func startFaultProxy(t testing.TB, target string, mode faultMode) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{
		Addr: ln.Addr().String(), target: target, ln: ln, mode: mode,
		tripped: make(chan struct{}), healed: make(chan struct{}),
		done: make(chan struct{}), conns: map[net.Conn]struct{}{},
	}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	t.Logf("fault proxy %s -> %s (%s after %d bytes)", p.Addr, target, mode.Kind, mode.After)
	return p
}

// Tripped is closed when the fault has happened.
func (p *faultProxy) Tripped() <-chan struct{} { return p.tripped }

// TrippedAt is when the fault happened (zero before), to measure how soon
// after it a client gave up.
func (p *faultProxy) TrippedAt() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tripAt
}

// Sent is the number of bytes forwarded client→server so far.
func (p *faultProxy) Sent() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent
}

// Heal ends the fault: connections open now are closed, and from now on
// everything is forwarded (Sent keeps counting).
func (p *faultProxy) Heal() {
	p.mu.Lock()
	p.mode = faultMode{Kind: faultNone}
	close(p.healed)
	p.healed = make(chan struct{})
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

func (p *faultProxy) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.done)
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	p.ln.Close()
	for c := range conns {
		c.Close()
	}
	p.wg.Wait()
}

// track registers c to be closed by Heal or the cleanup; false when the
// proxy is closed already.
func (p *faultProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *faultProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// state is the fault mode now and whether it has tripped.
func (p *faultProxy) state() (faultKind, bool, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode.Kind, p.isTrip && p.mode.Kind != faultNone, p.healed
}

func (p *faultProxy) serve(c net.Conn) {
	defer p.wg.Done()
	if !p.track(c) {
		c.Close()
		return
	}
	if kind, tripped, healed := p.state(); tripped {
		if kind == faultCut {
			resetConn(c)
			return
		}
		// Stalled: hold the connection open, say nothing.
		select {
		case <-p.done:
		case <-healed:
		}
		c.Close()
		return
	}
	s, err := net.DialTimeout("tcp", p.target, 10*time.Second)
	if err != nil {
		p.mu.Lock()
		p.dialErr = err
		p.mu.Unlock()
		c.Close()
		return
	}
	if !p.track(s) {
		c.Close()
		s.Close()
		return
	}
	var pipes sync.WaitGroup
	pipes.Add(2)
	go func() { defer pipes.Done(); p.pipe(c, s, true) }()
	go func() { defer pipes.Done(); p.pipe(s, c, false) }()
	pipes.Wait()
	c.Close()
	s.Close()
}

// take accounts for n bytes the client wants to send and returns how many
// of them may pass; fewer than n means the fault trips now.
func (p *faultProxy) take(n int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode.Kind == faultNone {
		p.sent += int64(n)
		return n
	}
	if p.isTrip {
		return 0
	}
	left := p.mode.After - p.sent
	if int64(n) <= left {
		p.sent += int64(n)
		return n
	}
	p.sent = p.mode.After
	p.isTrip = true
	p.tripAt = time.Now()
	close(p.tripped)
	return int(max(left, 0))
}

// pipe copies from src to dst; up counts the bytes against the budget.
func (p *faultProxy) pipe(src, dst net.Conn, up bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			allow := n
			if up {
				allow = p.take(n)
			}
			kind, tripped, healed := p.state()
			if tripped && !up {
				allow = 0 // nothing more comes back either
			}
			if allow > 0 {
				if _, werr := dst.Write(buf[:allow]); werr != nil {
					return
				}
			}
			if allow < n {
				if kind == faultCut {
					p.cutAll()
					return
				}
				select { // stalled until the cleanup or Heal
				case <-p.done:
				case <-healed:
				}
				return
			}
		}
		if err != nil {
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}

// cutAll resets every connection the proxy has open.
func (p *faultProxy) cutAll() {
	p.mu.Lock()
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	for c := range conns {
		resetConn(c)
	}
}

// resetConn closes c with an RST (SO_LINGER 0), as a dropped route or a
// crashed peer shows itself to a client.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// proxiedRegistryName is a name that resolves nowhere (.test is reserved,
// RFC 2606) and that the registry's certificate holds: a client reaches
// https://proxiedRegistryName:<port> only through a connectProxy, which
// proves that it honours HTTPS_PROXY. (Go's proxy selection, and so
// oras-go's, never proxies localhost or a loopback address, so the
// registry's own address cannot prove it.)
const proxiedRegistryName = "registry.cloudimg.test"

// connectProxy is an HTTP proxy on 127.0.0.1 that serves CONNECT only,
// for any host, always tunnelling to one target: the value of HTTPS_PROXY
// for a client that should reach a test registry by proxiedRegistryName.
type connectProxy struct {
	// URL is "http://127.0.0.1:port", for HTTPS_PROXY.
	URL string
	// Host is proxiedRegistryName with the target's port, the registry
	// address a client names through the proxy.
	Host    string
	srv     *httptest.Server
	mu      sync.Mutex
	tunnels []string // the CONNECT targets asked for, in order
}

// startConnectProxy starts a connectProxy in front of target
// ("127.0.0.1:port") and closes it and its tunnels in t.Cleanup.
func startConnectProxy(t testing.TB, target string) *connectProxy {
	t.Helper()
	_, port, err := net.SplitHostPort(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &connectProxy{Host: net.JoinHostPort(proxiedRegistryName, port)}
	var wg sync.WaitGroup
	done := make(chan struct{})
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodConnect {
			http.Error(w, "this proxy serves CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		p.mu.Lock()
		p.tunnels = append(p.tunnels, req.Host)
		p.mu.Unlock()
		s, err := net.DialTimeout("tcp", target, 10*time.Second)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		hj, ok := w.(http.Hijacker)
		if !ok {
			s.Close()
			http.Error(w, "no hijacking", http.StatusInternalServerError)
			return
		}
		c, rw, err := hj.Hijack()
		if err != nil {
			s.Close()
			return
		}
		if _, err := c.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
			c.Close()
			s.Close()
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			closeBoth := sync.OnceFunc(func() { c.Close(); s.Close() })
			go func() {
				<-done
				closeBoth()
			}()
			go func() {
				// What the client sent after the CONNECT request.
				_, _ = io.Copy(s, rw)
				closeBoth()
			}()
			_, _ = io.Copy(c, s)
			closeBoth()
		}()
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.srv.Listener.Close()
	p.srv.Listener = l
	p.srv.Start()
	p.URL = "http://" + l.Addr().String()
	t.Cleanup(func() {
		close(done)
		p.srv.CloseClientConnections()
		p.srv.Close()
		wg.Wait()
	})
	t.Logf("CONNECT proxy %s -> %s (clients name the registry %s)", p.URL, target, p.Host)
	return p
}

// Tunnels returns the hosts clients asked the proxy to CONNECT to.
func (p *connectProxy) Tunnels() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.tunnels...)
}

// orasBin is tools/bin/oras (make tools builds it from tools/oras).
func orasBin(t testing.TB) string {
	t.Helper()
	p := filepath.Join(suite.root, "tools", "bin", "oras")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is missing: run make tools (%v)", p, err)
	}
	return p
}

// clientError is a failed run of a client tool, with its stderr.
type clientError struct {
	Cmd    string // the command line (no credentials are ever on it)
	Err    error  // the exit status, or the context's error
	Stderr string
}

func (e *clientError) Error() string {
	return fmt.Sprintf("%s: %v: %s", e.Cmd, e.Err, strings.TrimSpace(e.Stderr))
}

func (e *clientError) Unwrap() error { return e.Err }

// runClient runs a client tool in dir (the working directory when "") with
// clientEnv plus env, and returns its stdout, or a *clientError with its
// stderr. ctx bounds it (the process is killed when ctx ends). Each run is
// logged with its duration.
func runClient(ctx context.Context, t testing.TB, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(clientEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	line := filepath.Base(name) + " " + strings.Join(args, " ")
	if len(env) > 0 {
		line = strings.Join(env, " ") + " " + line
	}
	t.Logf("%s (%s, exit %d)", line, time.Since(start).Round(time.Millisecond), cmd.ProcessState.ExitCode())
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return stdout.String(), &clientError{Cmd: line, Err: err, Stderr: stderr.String()}
	}
	return stdout.String(), nil
}

// clientEnv is the environment of client tools: the test's, without the
// variables that would point them at the caller's credentials or proxies.
func clientEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(k) {
		case "DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// orasFlags are the flags that let oras reach reg: --plain-http or
// --ca-file, and --registry-config with its credentials (a file under
// t.TempDir).
func orasFlags(t testing.TB, reg *testRegistry) []string {
	t.Helper()
	var f []string
	if reg.PlainHTTP {
		f = append(f, "--plain-http")
	} else {
		f = append(f, "--ca-file", reg.CAFile)
	}
	if reg.User != "" {
		f = append(f, "--registry-config", reg.AuthFile(t))
	}
	return f
}

// runOras runs `oras args… <flags for reg>` (see runClient).
func runOras(ctx context.Context, t testing.TB, reg *testRegistry, dir string, args ...string) (string, error) {
	t.Helper()
	return runClient(ctx, t, dir, reg.ClientEnv, orasBin(t), append(args, orasFlags(t, reg)...)...)
}

// orasDescriptor is the part of `oras push/attach --format json` we read.
type orasDescriptor struct {
	Digest       string `json:"digest"`
	MediaType    string `json:"mediaType"`
	ArtifactType string `json:"artifactType"`
}

// orasPushFile pushes file with the real `oras push` as an artifact of
// artifactType ("" for none) to ref, its layer of mediaType ("" for oras's
// default, application/vnd.oci.image.layer.v1.tar) titled with the file's
// base name, and returns the manifest's digest. ctx bounds the push.
func orasPushFile(ctx context.Context, t testing.TB, reg *testRegistry, ref, file, artifactType, mediaType string) (string, error) {
	t.Helper()
	arg := filepath.Base(file)
	if mediaType != "" {
		arg += ":" + mediaType
	}
	args := []string{"push", "--format", "json", ref, arg}
	if artifactType != "" {
		args = append(args, "--artifact-type", artifactType)
	}
	return orasDigest(runOras(ctx, t, reg, filepath.Dir(file), args...))
}

// orasAttach attaches file as a referrer of artifactType to subject (a
// reference) with the real `oras attach` and returns the referrer's digest.
func orasAttach(ctx context.Context, t testing.TB, reg *testRegistry, subject, file, artifactType string) (string, error) {
	t.Helper()
	return orasDigest(runOras(ctx, t, reg, filepath.Dir(file),
		"attach", "--format", "json", "--artifact-type", artifactType, subject, filepath.Base(file)))
}

func orasDigest(out string, err error) (string, error) {
	if err != nil {
		return "", err
	}
	var d orasDescriptor
	if err := json.Unmarshal([]byte(out), &d); err != nil || d.Digest == "" {
		return "", fmt.Errorf("oras printed no descriptor with a digest (%v): %s", err, out)
	}
	return d.Digest, nil
}

// referrer is one manifest that `oras discover` lists as referring to a
// subject.
type referrer struct {
	ArtifactType string            `json:"artifactType"`
	Digest       string            `json:"digest"`
	MediaType    string            `json:"mediaType"`
	Annotations  map[string]string `json:"annotations"`
	// Referrers are the referrers of this referrer (a signature of an SBOM).
	Referrers []referrer `json:"referrers"`
}

// orasDiscover lists the referrers of ref with `oras discover --format
// json` (the referrers API where the registry serves it, else the tag
// schema; oras decides as the plugin's oras-go does).
func orasDiscover(t testing.TB, reg *testRegistry, ref string) ([]referrer, error) {
	t.Helper()
	out, err := runOras(context.Background(), t, reg, "", "discover", "--format", "json", ref)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Referrers []referrer `json:"referrers"` // oras 1.3
		Manifests []referrer `json:"manifests"` // oras 1.2 and older
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return nil, fmt.Errorf("oras discover %s: not JSON (%v): %s", ref, err, out)
	}
	return append(doc.Referrers, doc.Manifests...), nil
}

// orasPull pulls ref with `oras pull -o dir` (files land under their
// org.opencontainers.image.title).
func orasPull(t testing.TB, reg *testRegistry, ref, dir string) error {
	t.Helper()
	_, err := runOras(context.Background(), t, reg, "", "pull", "-o", dir, ref)
	return err
}

// orasTags lists the tags of repo with `oras repo tags`.
func orasTags(t testing.TB, reg *testRegistry, repo string) ([]string, error) {
	t.Helper()
	out, err := runOras(context.Background(), t, reg, "", "repo", "tags", reg.Ref(repo, ""))
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// orasManifest fetches the manifest ref names with `oras manifest fetch`.
func orasManifest(t testing.TB, reg *testRegistry, ref string) ([]byte, error) {
	t.Helper()
	out, err := runOras(context.Background(), t, reg, "", "manifest", "fetch", ref)
	return []byte(out), err
}

// orasResolve returns the digest ("sha256:…") of the manifest ref names,
// with `oras resolve`.
func orasResolve(t testing.TB, reg *testRegistry, ref string) (string, error) {
	t.Helper()
	out, err := runOras(context.Background(), t, reg, "", "resolve", ref)
	if err != nil {
		return "", err
	}
	d := strings.TrimSpace(out)
	if !strings.HasPrefix(d, "sha256:") {
		return "", fmt.Errorf("oras resolve %s printed %q, not a digest", ref, out)
	}
	return d, nil
}

// orasManifestDelete deletes the manifest ref names with `oras manifest
// delete --force`.
func orasManifestDelete(t testing.TB, reg *testRegistry, ref string) error {
	t.Helper()
	_, err := runOras(context.Background(), t, reg, "", "manifest", "delete", "--force", ref)
	return err
}

// skopeoCopyToOCILayout copies ref (a reference without transport:
// Host/repo:tag or @digest) from reg with Debian's skopeo into a new OCI
// image layout under t.TempDir and returns the layout's directory. Note
// that skopeo (containers/image) compresses uncompressed layers on their
// way into an OCI layout: to judge what the registry holds, use
// skopeoCopyToDir.
func skopeoCopyToOCILayout(t testing.TB, reg *testRegistry, ref string) (string, error) {
	t.Helper()
	layout := filepath.Join(t.TempDir(), "layout")
	return layout, skopeoCopy(t, reg, ref, "oci:"+layout+":copy")
}

// skopeoCopyToDir copies ref from reg with skopeo into a new directory
// under t.TempDir (skopeo's dir: transport, which keeps the manifest's bytes
// and every blob as the registry has them: manifest.json, and each blob in
// a file named by its digest's hex) and returns the directory.
func skopeoCopyToDir(t testing.TB, reg *testRegistry, ref string) (string, error) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "dir")
	return dir, skopeoCopy(t, reg, ref, "dir:"+dir)
}

// skopeoCopy runs `skopeo copy docker://ref dest` against reg: its CA
// through --src-cert-dir (or --src-tls-verify=false for plain HTTP), the
// credentials through --src-authfile, no retries, and a signature policy of
// its own (accept anything), not the host's.
func skopeoCopy(t testing.TB, reg *testRegistry, ref, dest string) error {
	t.Helper()
	bin, err := exec.LookPath("skopeo")
	if err != nil {
		t.Fatalf("skopeo (Debian package skopeo) is not installed: run make deps (%v)", err)
	}
	policy := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--policy", policy, "copy", "--retry-times", "0"}
	if reg.PlainHTTP {
		args = append(args, "--src-tls-verify=false")
	} else {
		args = append(args, "--src-cert-dir", reg.CertDir)
	}
	if reg.User != "" {
		args = append(args, "--src-authfile", reg.AuthFile(t))
	} else {
		args = append(args, "--src-no-creds")
	}
	args = append(args, "docker://"+ref, dest)
	_, err = runClient(context.Background(), t, "", reg.ClientEnv, bin, args...)
	return err
}

// ociDescriptor is an OCI content descriptor.
type ociDescriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	// Platform is set on the entries of an image index.
	Platform *ociPlatform `json:"platform,omitempty"`
}

// ociPlatform is an image index entry's platform.
type ociPlatform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Variant      string `json:"variant,omitempty"`
}

// ociIndex is an OCI image index (parse orasManifest's bytes into it).
type ociIndex struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Manifests     []ociDescriptor   `json:"manifests"`
	Subject       *ociDescriptor    `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// ociManifest is an OCI image manifest.
type ociManifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        ociDescriptor     `json:"config"`
	Layers        []ociDescriptor   `json:"layers"`
	Subject       *ociDescriptor    `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// ociImageConfig is the part of an OCI image config a containerDisk needs.
type ociImageConfig struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	RootFS       struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// containerDisk is what inspectContainerDisk read from a copied image.
type containerDisk struct {
	// CopyDir is skopeo's copy (dir: transport, under t.TempDir): the
	// registry's manifest bytes in manifest.json, each blob in a file
	// named by its digest's hex.
	CopyDir string
	// ManifestDigest is the sha256 of the manifest as the registry served
	// it, "sha256:<hex>".
	ManifestDigest string
	Manifest       ociManifest
	Config         ociImageConfig
	// Entries are the layer's `tar --numeric-owner -tvf` lines.
	Entries []string
}

// checkContainerDisk fails the test unless ref in reg is a KubeVirt
// containerDisk holding wantFile with sha256 wantSHA256 (see
// inspectContainerDisk), and returns what it read.
func checkContainerDisk(t testing.TB, reg *testRegistry, ref, wantFile, wantSHA256 string) *containerDisk {
	t.Helper()
	cd, err := inspectContainerDisk(t, reg, ref, wantFile, wantSHA256)
	if err != nil {
		t.Fatalf("containerDisk %s: %v", ref, err)
	}
	return cd
}

// inspectContainerDisk copies ref from reg with skopeo (skopeoCopyToDir,
// blobs unchanged) and checks, with no code of the plugin: an OCI image
// manifest with an OCI image config whose os is linux, whose architecture
// is set and whose one diff_id is the sha256 of the one layer; that layer
// is an uncompressed tar (application/vnd.oci.image.layer.v1.tar, its
// digest = its diff_id); GNU `tar --numeric-owner -tvf` lists
// disk/<wantFile> as a regular file owned 107/107 and readable by its
// owner, and no regular file outside disk/; the file extracted by tar has
// sha256 wantSHA256 (hex). The first failed check is returned (an error
// naming what and where).
func inspectContainerDisk(t testing.TB, reg *testRegistry, ref, wantFile, wantSHA256 string) (*containerDisk, error) {
	t.Helper()
	dir, err := skopeoCopyToDir(t, reg, ref)
	if err != nil {
		return nil, err
	}
	cd := &containerDisk{CopyDir: dir}
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, err
	}
	cd.ManifestDigest = fmt.Sprintf("sha256:%x", sha256.Sum256(raw))
	if err := json.Unmarshal(raw, &cd.Manifest); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if cd.Manifest.MediaType != ociManifestType {
		return nil, fmt.Errorf("manifest media type %q, want %q", cd.Manifest.MediaType, ociManifestType)
	}
	blob := func(digest string) string {
		_, h, _ := strings.Cut(digest, ":")
		return filepath.Join(dir, h)
	}
	man := cd.Manifest
	if man.Config.MediaType != ociConfigType {
		return nil, fmt.Errorf("config media type %q, want %q (an image config: CDI and container runtimes need one)", man.Config.MediaType, ociConfigType)
	}
	if err := readJSONFile(blob(man.Config.Digest), &cd.Config); err != nil {
		return nil, err
	}
	cfg := cd.Config
	if cfg.OS != "linux" || cfg.Architecture == "" {
		return nil, fmt.Errorf("config os %q architecture %q, want os linux and an architecture", cfg.OS, cfg.Architecture)
	}
	if len(man.Layers) != 1 {
		return nil, fmt.Errorf("%d layers, want 1", len(man.Layers))
	}
	layer := man.Layers[0]
	if layer.MediaType != ociLayerTarType {
		return nil, fmt.Errorf("layer media type %q, want %q (uncompressed)", layer.MediaType, ociLayerTarType)
	}
	layerPath := blob(layer.Digest)
	layerSum, err := sha256File(layerPath)
	if err != nil {
		return nil, err
	}
	if "sha256:"+layerSum != layer.Digest {
		return nil, fmt.Errorf("layer blob has sha256:%s, its descriptor says %s", layerSum, layer.Digest)
	}
	if cfg.RootFS.Type != "layers" || len(cfg.RootFS.DiffIDs) != 1 || cfg.RootFS.DiffIDs[0] != "sha256:"+layerSum {
		return nil, fmt.Errorf("config rootfs %+v, want type layers and diff_ids [sha256:%s] (the uncompressed layer's sha256)", cfg.RootFS, layerSum)
	}

	out, err := runClient(context.Background(), t, "", nil, "tar", "--numeric-owner", "-tvf", layerPath)
	if err != nil {
		return nil, err
	}
	cd.Entries = strings.Split(strings.TrimRight(out, "\n"), "\n")
	want := "disk/" + wantFile
	var found bool
	var regular int
	for _, line := range cd.Entries {
		f := strings.Fields(line)
		if len(f) < 6 {
			return nil, fmt.Errorf("tar -tv line %q: cannot read it", line)
		}
		mode, owner, name := f[0], f[1], strings.Join(f[5:], " ")
		if mode[0] == '-' {
			regular++
			if !strings.HasPrefix(name, "disk/") {
				return nil, fmt.Errorf("layer has %s outside disk/ (%q)", name, line)
			}
		}
		if name != want {
			continue
		}
		found = true
		if mode[0] != '-' || owner != containerDiskOwner || mode[1] != 'r' {
			return nil, fmt.Errorf("layer entry %q: want a regular file owned %s and readable by its owner", line, containerDiskOwner)
		}
	}
	if !found || regular != 1 {
		return nil, fmt.Errorf("layer lists %d regular files, want exactly %s:\n%s", regular, want, out)
	}
	h := sha256.New()
	cmd := exec.Command("tar", "-xOf", layerPath, want)
	cmd.Stdout = h
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, &clientError{Cmd: strings.Join(cmd.Args, " "), Err: err, Stderr: stderr.String()}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != wantSHA256 {
		return nil, fmt.Errorf("%s extracted by tar has sha256 %s, want %s", want, got, wantSHA256)
	}
	return cd, nil
}

func readJSONFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// errorsAsClient returns err's *clientError, or nil.
func errorsAsClient(err error) *clientError {
	var ce *clientError
	if errors.As(err, &ce) {
		return ce
	}
	return nil
}

// checkSecretAbsent fails the test if `grep -rF` finds secret (e.g. a
// registry's password) in any file under roots. It looks for the plain
// text only: Docker's config.json and containers' auth.json hold
// credentials base64-encoded, which is why the helpers write those under
// t.TempDir.
func checkSecretAbsent(t testing.TB, secret string, roots ...string) {
	t.Helper()
	if secret == "" {
		t.Fatal("checkSecretAbsent: empty secret")
	}
	cmd := exec.Command("grep", append([]string{"-rlF", "--", secret}, roots...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	switch {
	case err == nil:
		t.Errorf("the secret is written in: %s", strings.Join(strings.Fields(string(out)), ", "))
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		// not found anywhere
	default:
		t.Errorf("grep -rlF <secret> %s: %v: %s", strings.Join(roots, " "), err, stderr.String())
	}
}

// writeContainerDiskFixture writes, with no code of the plugin, what a
// containerDisk push would send for a disk file named name holding data:
// the uncompressed layer tar (disk/ and disk/<name>, owned uid/gid, fixed
// times) and an image config with os linux, architecture amd64 and the
// layer's diff_id. It returns the two paths, for `oras push --config`.
func writeContainerDiskFixture(t testing.TB, dir, name string, data []byte, uid int) (layerPath, configPath string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(0, 0)
	for _, h := range []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "disk/", Mode: 0o755, Uid: uid, Gid: uid, ModTime: mtime, Format: tar.FormatPAX},
		{Typeflag: tar.TypeReg, Name: "disk/" + name, Mode: 0o440, Uid: uid, Gid: uid, Size: int64(len(data)), ModTime: mtime, Format: tar.FormatPAX},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	layerPath = filepath.Join(dir, "layer.tar")
	configPath = filepath.Join(dir, "config.json")
	config := fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%x"]}}`, sum)
	if err := os.WriteFile(layerPath, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	return layerPath, configPath
}

// TestRegistryHarness proves the registry harness itself, with real
// clients and no plugin code and no guest: oras push and attach, then oras
// discover lists the SBOM-like referrer on Distribution (through the tag
// schema: a sha256-<hex> tag appears) and on the referrers registry
// (through the API: a GET …/referrers/ in its log and no schema tag); oras
// pull gives the same bytes; a wrong password is refused; oras reaches the
// registry by a name that resolves nowhere only through HTTPS_PROXY (a
// CONNECT proxy); a containerDisk
// written by hand passes checkContainerDisk and wrong ones (owner 0, other
// bytes) fail it; deletion is refused by a registry without it and works
// on one with it; the fault proxy cuts an oras push of 20 MiB mid-blob
// (the tag never appears) and, healed, lets the same push through with TLS
// verified end to end; in stall mode a push hangs until the test gives up.
func TestRegistryHarness(t *testing.T) {
	start := time.Now()
	dist := startRegistry(t, registryOpts{Delete: false})
	distDel := startRegistry(t, registryOpts{Delete: true})
	refs := startReferrersRegistry(t)
	dir := testDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	payload := []byte("cloudimg registry harness " + randHex(16) + "\n")
	small := filepath.Join(dir, "payload.bin")
	sbom := filepath.Join(dir, "payload.cdx.json")
	if err := os.WriteFile(small, payload, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sbom, []byte(`{"bomFormat":"CycloneDX","specVersion":"1.6","version":1}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const (
		repo    = "harness/file"
		artType = "application/vnd.cloudimg.harness.v1"
		sbomAT  = "application/vnd.cyclonedx+json"
	)

	for _, tc := range []struct {
		name string
		reg  *testRegistry
		api  bool // serves the referrers API
	}{{"distribution", dist, false}, {"referrers-api", refs, true}} {
		t.Run("referrers/"+tc.name, func(t *testing.T) {
			reg := tc.reg
			digest, err := orasPushFile(ctx, t, reg, reg.Ref(repo, "v1"), small, artType, "")
			if err != nil {
				t.Fatal(err)
			}
			sbomDigest, err := orasAttach(ctx, t, reg, reg.Ref(repo, "v1"), sbom, sbomAT)
			if err != nil {
				t.Fatal(err)
			}
			list, err := orasDiscover(t, reg, reg.Ref(repo, digest))
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != 1 || list[0].ArtifactType != sbomAT || list[0].Digest != sbomDigest {
				t.Errorf("oras discover: %+v, want one referrer %s of type %s", list, sbomDigest, sbomAT)
			}
			tags, err := orasTags(t, reg, repo)
			if err != nil {
				t.Fatal(err)
			}
			schemaTag := strings.Replace(digest, ":", "-", 1)
			hasSchemaTag := strings.Contains(" "+strings.Join(tags, " ")+" ", " "+schemaTag+" ")
			if tc.api {
				if hasSchemaTag || !reg.LogMatches(`GET /v2/`+repo+`/referrers/`+digest) {
					t.Errorf("referrers registry: tags %v (want no %s) and the log shows the referrers API used: %v", tags, schemaTag, reg.LogMatches(`/referrers/`))
				}
			} else if !hasSchemaTag {
				t.Errorf("Distribution: tags %v, want the referrers tag schema's %s", tags, schemaTag)
			} else {
				b, err := orasManifest(t, reg, reg.Ref(repo, schemaTag))
				var idx ociIndex
				if err == nil {
					err = json.Unmarshal(b, &idx)
				}
				if err != nil || idx.MediaType != ociIndexType || len(idx.Manifests) != 1 ||
					idx.Manifests[0].Digest != sbomDigest || idx.Manifests[0].ArtifactType != sbomAT {
					t.Errorf("Distribution: the referrers tag %s holds %s (%v), want an index of %s (%s)", schemaTag, b, err, sbomDigest, sbomAT)
				}
			}
			out := filepath.Join(t.TempDir(), "pulled")
			if err := orasPull(t, reg, reg.Ref(repo, "v1"), out); err != nil {
				t.Fatal(err)
			}
			if got, err := os.ReadFile(filepath.Join(out, "payload.bin")); err != nil || !bytes.Equal(got, payload) {
				t.Errorf("oras pull: %q, %v; want the pushed bytes", got, err)
			}
		})
	}

	t.Run("wrong-password", func(t *testing.T) {
		_, err := orasPushFile(ctx, t, dist.withPassword("not-"+dist.Password), dist.Ref(repo, "bad"), small, artType, "")
		ce := errorsAsClient(err)
		if ce == nil || !regexp.MustCompile(`(?i)401|unauthorized`).MatchString(ce.Stderr) {
			t.Fatalf("push with a wrong password: %v, want a refusal (401)", err)
		}
		if _, err := orasManifest(t, dist, dist.Ref(repo, "bad")); err == nil {
			t.Errorf("the tag pushed with a wrong password exists")
		}
	})

	t.Run("containerdisk", func(t *testing.T) {
		data := []byte("not really a qcow2 " + randHex(32))
		sum := sha256.Sum256(data)
		want := hex.EncodeToString(sum[:])
		push := func(tag string, uid int) (ref, digest string) {
			d := t.TempDir()
			layer, config := writeContainerDiskFixture(t, d, "disk.qcow2", data, uid)
			ref = dist.Ref("harness/disk", tag)
			digest, err := orasDigest(runOras(ctx, t, dist, d, "push", "--format", "json", ref,
				"--config", filepath.Base(config)+":"+ociConfigType, filepath.Base(layer)+":"+ociLayerTarType))
			if err != nil {
				t.Fatal(err)
			}
			return ref, digest
		}
		good, goodDigest := push("good", 107)
		cd := checkContainerDisk(t, dist, good, "disk.qcow2", want)
		if cd.Config.Architecture != "amd64" || len(cd.Entries) != 2 || cd.ManifestDigest != goodDigest {
			t.Errorf("containerDisk read back: config %+v, entries %q, manifest %s (pushed %s)", cd.Config, cd.Entries, cd.ManifestDigest, goodDigest)
		}
		if _, err := inspectContainerDisk(t, dist, good, "disk.qcow2", strings.Repeat("0", 64)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("wrong sha256 accepted: %v", err)
		}
		if _, err := inspectContainerDisk(t, dist, good, "other.qcow2", want); err == nil {
			t.Errorf("wrong file name accepted")
		}
		layout, err := skopeoCopyToOCILayout(t, dist, good)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(layout, "index.json")); err != nil {
			t.Errorf("skopeo's OCI layout: %v", err)
		}
		root, _ := push("root", 0)
		if _, err := inspectContainerDisk(t, dist, root, "disk.qcow2", want); err == nil || !strings.Contains(err.Error(), containerDiskOwner) {
			t.Errorf("a disk owned 0/0 accepted: %v", err)
		}
	})

	t.Run("https-proxy", func(t *testing.T) {
		cp := startConnectProxy(t, dist.Host)
		via := dist.viaConnectProxy(cp)
		want, err := orasResolve(t, dist, dist.Ref(repo, "v1"))
		if err != nil {
			t.Fatal(err)
		}
		direct := *via
		direct.ClientEnv = nil
		if _, err := orasResolve(t, &direct, direct.Ref(repo, "v1")); err == nil {
			t.Fatalf("%s was reached without the proxy: the proof below would prove nothing", direct.Host)
		}
		got, err := orasResolve(t, via, via.Ref(repo, "v1"))
		if err != nil || got != want {
			t.Errorf("through HTTPS_PROXY: %s, %v; want %s", got, err, want)
		}
		if tun := cp.Tunnels(); len(tun) == 0 || tun[0] != cp.Host {
			t.Errorf("the proxy saw CONNECTs to %v, want %s", tun, cp.Host)
		}
	})

	t.Run("delete", func(t *testing.T) {
		ref := dist.Ref(repo, "v1")
		before, err := orasResolve(t, dist, ref)
		if err != nil {
			t.Fatal(err)
		}
		err = orasManifestDelete(t, dist, ref)
		ce := errorsAsClient(err)
		if ce == nil || !regexp.MustCompile(`(?i)405|unsupported|not allowed`).MatchString(ce.Stderr) {
			t.Errorf("delete on a registry without deletion: %v, want a refusal (405)", err)
		}
		if after, err := orasResolve(t, dist, ref); err != nil || after != before {
			t.Errorf("after a refused delete: %s names %s, %v; want %s as before", ref, after, err, before)
		}
		ref = distDel.Ref(repo, "v1")
		if _, err := orasPushFile(ctx, t, distDel, ref, small, artType, ""); err != nil {
			t.Fatal(err)
		}
		if err := orasManifestDelete(t, distDel, ref); err != nil {
			t.Errorf("delete on a registry with deletion: %v", err)
		}
		if _, err := orasManifest(t, distDel, ref); err == nil {
			t.Errorf("the deleted manifest is still served")
		}
	})

	big := filepath.Join(t.TempDir(), "big.bin") // 20 MiB of noise: not kept
	bigData := make([]byte, 20<<20)
	if _, err := rand.Read(bigData); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, bigData, 0o644); err != nil {
		t.Fatal(err)
	}
	const budget = 5 << 20

	t.Run("fault-cut", func(t *testing.T) {
		p := startFaultProxy(t, dist.Host, faultMode{Kind: faultCut, After: budget})
		via := dist.via(p.Addr)
		began := time.Now()
		_, err := orasPushFile(ctx, t, via, via.Ref("harness/big", "v1"), big, artType, "")
		if err == nil {
			t.Fatalf("push through a proxy that cuts after %d bytes succeeded", budget)
		}
		select {
		case <-p.Tripped():
		default:
			t.Fatalf("the push failed before the cut (%d bytes sent): %v", p.Sent(), err)
		}
		t.Logf("cut after %d bytes; oras failed %s after it started, %s after the cut: %v", p.Sent(), time.Since(began).Round(time.Millisecond), time.Since(p.TrippedAt()).Round(time.Millisecond), err)
		if p.Sent() != budget {
			t.Errorf("proxy forwarded %d bytes, want exactly %d", p.Sent(), budget)
		}
		if _, err := orasManifest(t, dist, dist.Ref("harness/big", "v1")); err == nil {
			t.Errorf("the tag of the cut push exists")
		}
		p.Heal()
		if _, err := orasPushFile(ctx, t, via, via.Ref("harness/big", "v1"), big, artType, ""); err != nil {
			t.Fatalf("push through the healed proxy: %v", err)
		}
		if p.Sent() < int64(len(bigData)) {
			t.Errorf("the healed proxy forwarded %d bytes in all, less than the 20 MiB blob", p.Sent())
		}
	})

	t.Run("fault-stall", func(t *testing.T) {
		p := startFaultProxy(t, dist.Host, faultMode{Kind: faultStall, After: budget})
		via := dist.via(p.Addr)
		pushCtx, stop := context.WithCancel(ctx)
		defer stop()
		done := make(chan error, 1)
		go func() {
			_, err := orasPushFile(pushCtx, t, via, via.Ref("harness/stalled", "v1"), big, artType, "")
			done <- err
		}()
		select {
		case <-p.Tripped():
		case err := <-done:
			t.Fatalf("the push ended before the stall (%d bytes sent): %v", p.Sent(), err)
		}
		// The proof of a hang: nothing ends it within this window but us.
		const window = 5 * time.Second
		select {
		case err := <-done:
			t.Fatalf("the push ended %s into the stall by itself: %v", window, err)
		case <-time.After(window):
		}
		stop()
		err := <-done
		if err == nil || !errors.Is(err, context.Canceled) {
			t.Errorf("the stalled push, cancelled by the test: %v, want context.Canceled", err)
		}
		if _, err := orasManifest(t, dist, dist.Ref("harness/stalled", "v1")); err == nil {
			t.Errorf("the tag of the stalled push exists")
		}
	})
	// The password reached oras only through auth files under t.TempDir:
	// no registry's files, no log and no test file has it.
	checkSecretAbsent(t, dist.Password, dist.Dir, distDel.Dir, refs.Dir, dir)
	planted := filepath.Join(dir, "planted.txt")
	if err := os.WriteFile(planted, []byte("x"+dist.Password+"x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command("grep", "-rlF", "--", dist.Password, dir).Output(); strings.TrimSpace(string(out)) != planted {
		t.Errorf("grep does not find a planted password (got %q): checkSecretAbsent would prove nothing", out)
	}
	os.Remove(planted)
	t.Logf("registry harness self-test: %s", time.Since(start).Round(time.Millisecond))
}
