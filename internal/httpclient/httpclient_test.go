package httpclient

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"
)

func TestNewBoundsTheWaits(t *testing.T) {
	tr, ok := New().Transport.(*http.Transport)
	if !ok {
		t.Fatalf("transport is %T, want *http.Transport", New().Transport)
	}
	if tr.TLSHandshakeTimeout != TLSHandshakeTimeout || tr.ResponseHeaderTimeout != ResponseHeaderTimeout {
		t.Errorf("TLS handshake %v, response header %v; want %v, %v", tr.TLSHandshakeTimeout, tr.ResponseHeaderTimeout, TLSHandshakeTimeout, ResponseHeaderTimeout)
	}
	if tr.Proxy == nil {
		t.Error("no proxy function: HTTP(S)_PROXY from the environment would be ignored")
	}
	if tr.DialContext == nil {
		t.Error("no bounded dialer")
	}
}

func TestOrDefault(t *testing.T) {
	c := &http.Client{}
	if OrDefault(c) != c {
		t.Error("OrDefault replaced a given client")
	}
	if d := OrDefault(nil); d == nil || d == http.DefaultClient || d != OrDefault(nil) {
		t.Errorf("OrDefault(nil) = %p: want one shared client that is not http.DefaultClient", d)
	}
}

// A server that accepts the connection but never answers must not hold a
// request for longer than ResponseHeaderTimeout; checked with a shorter one.
func TestResponseHeaderWaitIsBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { <-done; conn.Close() }()
		}
	}()
	c := New()
	c.Transport.(*http.Transport).ResponseHeaderTimeout = 200 * time.Millisecond
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+ln.Addr().String()+"/", nil)
	start := time.Now()
	resp, err := c.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("a server that never answers gave a response")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the request took %v although the header wait is bounded to 200ms", d)
	}
}
