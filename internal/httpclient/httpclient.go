// Package httpclient is the one HTTP client configuration of the plugin: the
// data sources, the image-source resolution (internal/imagesource) and the
// metadata reads (internal/imagemeta, the post-processor's http(s) sources
// and repositories) all fetch through a client made here, never through
// http.DefaultClient, which has no timeouts.
package httpclient

import (
	"net"
	"net/http"
	"time"
)

// The bounds New puts on each request's phases. The caller's context bounds
// the whole request (body included).
const (
	// DialTimeout bounds establishing the TCP connection.
	DialTimeout = 30 * time.Second
	// TLSHandshakeTimeout bounds the TLS handshake.
	TLSHandshakeTimeout = 30 * time.Second
	// ResponseHeaderTimeout bounds the wait for the response headers once
	// the request is written.
	ResponseHeaderTimeout = time.Minute
)

// New returns a client with http.DefaultTransport's behaviour (proxy from
// the environment, HTTP/2, keep-alives) and bounded connection, TLS and
// response-header waits (DialTimeout, TLSHandshakeTimeout,
// ResponseHeaderTimeout). It sets no overall timeout: pass a context with a
// deadline to bound a whole transfer.
func New() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = TLSHandshakeTimeout
	t.ResponseHeaderTimeout = ResponseHeaderTimeout
	return &http.Client{Transport: t}
}

// shared is the client OrDefault gives for nil; one per process, so that
// connections are reused across reads.
var shared = New()

// OrDefault returns c, or for nil a process-wide client made by New.
// Functions that take an optional *http.Client use it instead of
// http.DefaultClient.
func OrDefault(c *http.Client) *http.Client {
	if c != nil {
		return c
	}
	return shared
}
