// Package ociregistry keeps VM images in an OCI registry (CNCF Distribution,
// Harbor, zot, GHCR, ECR …): it pushes an image in one of two layouts with
// its documents (SBOM, provenance) as referrers, finds the newest image of a
// name and labels from the manifests' annotations, pulls a disk back by
// digest, and deletes older images for retention. It is the one place the
// cloudimg-oci post-processor, the cloudimg-repository data source (`oci://`)
// and the cloudimg-kvm builder (`iso_url = "oci://…"`) reach a registry
// through, over oras-go (oras.land/oras-go/v2). It knows nothing of Packer.
//
// The wire protocol is the OCI Distribution Specification v1.1
// (https://github.com/opencontainers/distribution-spec); manifests and
// indexes follow the OCI Image Specification v1.1.
package ociregistry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/retry"
)

// DefaultStallTimeout is how long a request to the registry may make no
// progress at all (no byte sent or received, no response) before it is
// abandoned as stalled. A transfer that moves keeps going however long it
// takes.
const DefaultStallTimeout = 20 * time.Second

// Options say how to reach and log in to a registry. The zero value uses
// the credentials the user already has (see Credentials), the system's TLS
// roots and the proxy from the environment.
type Options struct {
	// Username and Password, when Username is set, are used for this
	// registry instead of any credentials file. The password never appears
	// in an error or a log line of this package.
	Username string
	Password string
	// CAFile is a PEM file of certificate authorities trusted besides the
	// system's roots (a registry with a private CA).
	CAFile string
	// PlainHTTP talks HTTP instead of HTTPS. Only for registries on a
	// trusted network or the loopback.
	PlainHTTP bool
	// StallTimeout is DefaultStallTimeout when zero.
	StallTimeout time.Duration
	// UserAgent is sent with every request when set.
	UserAgent string
}

// Client is a connection to one repository of a registry. It is safe for
// concurrent use.
type Client struct {
	ref  Reference
	repo *remote.Repository
}

// Open returns a client for the repository of ref (its Reference part, tag
// or digest, is ignored). It reads the CA file and the credentials files
// now; nothing is sent to the registry yet. Errors name the file at fault.
func Open(ref Reference, o Options) (*Client, error) {
	repo, err := remote.NewRepository(ref.Registry + "/" + ref.Repository)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref.Name(), err)
	}
	repo.PlainHTTP = o.PlainHTTP
	// Where the registry has no referrers API, oras-go keeps the referrers
	// in an index under the tag sha256-<digest> and, by default, deletes
	// the index it replaces: on a registry that allows no deletion that
	// fails the push. The replaced index is left untagged instead, for the
	// registry's garbage collection.
	repo.SkipReferrersGC = true
	hc, err := httpClient(o)
	if err != nil {
		return nil, err
	}
	cred, err := credentialFunc(ref.Registry, o)
	if err != nil {
		return nil, err
	}
	client := &auth.Client{
		Client:     hc,
		Cache:      auth.NewCache(),
		Credential: cred,
		Header:     http.Header{},
	}
	if o.UserAgent != "" {
		client.SetUserAgent(o.UserAgent)
	}
	repo.Client = client
	return &Client{ref: ref, repo: repo}, nil
}

// Reference is the repository the client talks to.
func (c *Client) Reference() Reference { return c.ref }

// httpClient is Go's default transport (proxy from HTTPS_PROXY / NO_PROXY,
// HTTP/2) with the trusted roots of o, bounded connection waits, the stall
// guard and oras-go's retry policy for transient errors (429, 5xx, resets).
func httpClient(o Options) (*http.Client, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = http.ProxyFromEnvironment
	t.DialContext = (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 15 * time.Second
	if o.CAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file: %s holds no PEM certificate", o.CAFile)
		}
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	idle := o.StallTimeout
	if idle <= 0 {
		idle = DefaultStallTimeout
	}
	return &http.Client{Transport: &stallTransport{base: retry.NewTransport(t), idle: idle}}, nil
}

// credentialFunc returns, in this order: the static username and password
// of o; else the first of these that has credentials for the registry: the
// containers auth file (REGISTRY_AUTH_FILE, else
// $XDG_RUNTIME_DIR/containers/auth.json), Docker's config
// ($DOCKER_CONFIG/config.json, else ~/.docker/config.json) with its
// credential helpers (credHelpers, credsStore). Missing files are skipped.
// These are the places podman, skopeo, docker and oras read.
func credentialFunc(registry string, o Options) (auth.CredentialFunc, error) {
	if o.Username != "" {
		return auth.StaticCredential(registry, auth.Credential{Username: o.Username, Password: o.Password}), nil
	}
	var stores []credentials.Store
	add := func(path, what string) error {
		if path == "" {
			return nil
		}
		if _, err := os.Stat(path); err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return fmt.Errorf("%s %s: %w", what, path, err)
		}
		s, err := credentials.NewStore(path, credentials.StoreOptions{})
		if err != nil {
			return fmt.Errorf("%s %s: %w", what, path, err)
		}
		stores = append(stores, s)
		return nil
	}
	authFile := os.Getenv("REGISTRY_AUTH_FILE")
	if authFile == "" && os.Getenv("XDG_RUNTIME_DIR") != "" {
		authFile = filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "containers", "auth.json")
	}
	if err := add(authFile, "containers auth file (REGISTRY_AUTH_FILE)"); err != nil {
		return nil, err
	}
	dockerDir := os.Getenv("DOCKER_CONFIG")
	if dockerDir == "" {
		if home, err := os.UserHomeDir(); err == nil {
			dockerDir = filepath.Join(home, ".docker")
		}
	}
	if dockerDir != "" {
		if err := add(filepath.Join(dockerDir, "config.json"), "Docker config (DOCKER_CONFIG)"); err != nil {
			return nil, err
		}
	}
	if len(stores) == 0 {
		return auth.StaticCredential(registry, auth.EmptyCredential), nil
	}
	return credentials.Credential(credentials.NewStoreWithFallbacks(stores[0], stores[1:]...)), nil
}

// errStalled is the cause of a request the stall guard abandoned.
var errStalled = errors.New("stalled")

// stallTransport abandons a request that makes no progress for idle: no
// byte of its body sent, no response, no byte of the response read. Each
// byte moved restarts the clock, so a slow but moving transfer is not cut.
type stallTransport struct {
	base http.RoundTripper
	idle time.Duration
}

func (t *stallTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	timer := time.AfterFunc(t.idle, func() { cancel(errStalled) })
	poke := func() { timer.Reset(t.idle) }
	done := func() { timer.Stop(); cancel(nil) }
	r := req.Clone(ctx)
	stopWatch := func() {}
	if f, ok := req.Body.(*os.File); ok {
		// A file body is left as it is, so that the transport can hand it
		// to sendfile(2), which reads no byte through Go: its offset,
		// which sendfile advances, tells the progress instead.
		stopWatch = watchOffset(f, t.idle/10, poke)
	} else if req.Body != nil && req.Body != http.NoBody {
		r.Body = &progressReader{rc: req.Body, poke: poke}
	}
	resp, err := t.base.RoundTrip(r)
	stopWatch()
	if err != nil {
		stalled := context.Cause(ctx) == errStalled
		done()
		if stalled {
			return nil, fmt.Errorf("%s %s: no progress for %s: %w", req.Method, req.URL.Redacted(), t.idle, errStalled)
		}
		return nil, err
	}
	resp.Body = &progressReader{rc: resp.Body, poke: poke, ctx: ctx, idle: t.idle, close: done}
	return resp, nil
}

// watchOffset calls poke every period while f's offset moves, until the
// returned func is called. lseek(2) with SEEK_CUR only reads the offset,
// safely beside a sendfile(2) on the same file.
func watchOffset(f *os.File, period time.Duration, poke func()) (stop func()) {
	if period < 10*time.Millisecond {
		period = 10 * time.Millisecond
	}
	done := make(chan struct{})
	var once sync.Once
	go func() {
		tick := time.NewTicker(period)
		defer tick.Stop()
		last := int64(-1)
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if pos, err := f.Seek(0, io.SeekCurrent); err == nil && pos != last {
					last = pos
					poke()
				}
			}
		}
	}()
	return func() { once.Do(func() { close(done) }) }
}

// progressReader restarts the stall clock on every read that moves data.
type progressReader struct {
	rc    io.ReadCloser
	poke  func()
	ctx   context.Context
	idle  time.Duration
	close func()
	once  sync.Once
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.rc.Read(b)
	if n > 0 {
		p.poke()
	}
	if err != nil && p.ctx != nil && context.Cause(p.ctx) == errStalled {
		err = fmt.Errorf("reading the response: no progress for %s: %w", p.idle, errStalled)
	}
	return n, err
}

func (p *progressReader) Close() error {
	err := p.rc.Close()
	if p.close != nil {
		p.once.Do(p.close)
	}
	return err
}
