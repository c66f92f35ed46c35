package confluence

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Hostile servers (issue 13): redirects are never followed, answers are
// bounded. Every server here listens on loopback.

// dualServer speaks TLS and plain HTTP on one port: it sniffs the first
// byte of each connection (0x16 opens a TLS handshake).
type dualServer struct {
	addr   string
	caPEM  string
	closed chan struct{}
	ln     net.Listener
}

func newDualServer(t *testing.T, tlsHandler, plainHandler http.Handler) *dualServer {
	t.Helper()
	cert, caPEM := loopbackCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &dualServer{addr: ln.Addr().String(), caPEM: caPEM, closed: make(chan struct{}), ln: ln}
	tlsConns := &chanListener{ch: make(chan net.Conn), addr: ln.Addr(), done: d.closed}
	plainConns := &chanListener{ch: make(chan net.Conn), addr: ln.Addr(), done: d.closed}
	tlsSrv := &http.Server{Handler: tlsHandler, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	plainSrv := &http.Server{Handler: plainHandler}
	go func() { _ = tlsSrv.Serve(tls.NewListener(tlsConns, tlsSrv.TLSConfig)) }()
	go func() { _ = plainSrv.Serve(plainConns) }()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				br := bufio.NewReader(c)
				first, err := br.Peek(1)
				if err != nil {
					c.Close()
					return
				}
				pc := &peekedConn{Conn: c, r: br}
				to := plainConns
				if first[0] == 0x16 {
					to = tlsConns
				}
				select {
				case to.ch <- pc:
				case <-d.closed:
					c.Close()
				}
			}()
		}
	}()
	t.Cleanup(func() {
		close(d.closed)
		ln.Close()
		tlsSrv.Close()
		plainSrv.Close()
	})
	return d
}

type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (p *peekedConn) Read(b []byte) (int, error) { return p.r.Read(b) }

type chanListener struct {
	ch   chan net.Conn
	addr net.Addr
	done chan struct{}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}
func (l *chanListener) Close() error   { return nil }
func (l *chanListener) Addr() net.Addr { return l.addr }

// loopbackCert is a self-signed certificate for 127.0.0.1 and its PEM.
func loopbackCert(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dc.internal"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	return cert, string(certPEM)
}

// Item 1: https://host → http://host on the same host and port. Go copies
// Authorization onto a redirect to the same host name, scheme or not, so
// following it would send the PAT in clear text.
func TestHTTPSToHTTPRedirectSendsNoCredentials(t *testing.T) {
	var plain sync.Map // Authorization headers seen over plain http
	var plainHits atomic.Int64
	var d *dualServer
	d = newDualServer(t,
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://"+d.addr+r.URL.RequestURI(), http.StatusFound)
		}),
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			plainHits.Add(1)
			plain.Store(r.Header.Get("Authorization"), true)
			fmt.Fprint(w, `{"results":[{"key":"ENG","name":"Eng","homepage":{"id":"1"}}],"size":1}`)
		}))
	c, err := NewServer("https://"+d.addr, WithAuthorizer(BearerToken("pat-SECRET")), loopback(), WithCA(d.caPEM))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.SpaceByKey(context.Background(), "ENG")
	if n := plainHits.Load(); n != 0 {
		plain.Range(func(k, _ any) bool { t.Errorf("plain http received Authorization %q", k); return true })
		t.Fatalf("%d requests followed the redirect to plain http", n)
	}
	var re *RedirectError
	if !errors.As(err, &re) || !errors.Is(err, ErrRedirected) {
		t.Fatalf("err %v, want a RedirectError", err)
	}
	if want := "http://" + d.addr + "/rest/api/space?…"; re.To != want {
		t.Errorf("To %q, want %q", re.To, want)
	}
	if msg := err.Error(); !strings.Contains(msg, "base_url redirects to http://"+d.addr) || !strings.Contains(msg, "fix the integration's base_url") || strings.Contains(msg, "spaceKey") {
		t.Errorf("message %q: want where it pointed, no query, and the fix", msg)
	}
}

// Item 2: a write answered 301/302/303/307/308, and a redirect to another
// path on the same host: nothing follows, the task gets a permanent error
// naming where it pointed, and no secret from the Location leaks.
func TestRedirectsAreNeverFollowed(t *testing.T) {
	for _, code := range []int{301, 302, 303, 307, 308} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			var elsewhere atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/rest/api/content" {
					elsewhere.Add(1)
					fmt.Fprint(w, `{}`)
					return
				}
				w.Header().Set("Location", "/admin/steal?token=LOCATION-SECRET")
				w.WriteHeader(code)
			}))
			defer srv.Close()
			c, err := NewServer(srv.URL, WithAuthorizer(BearerToken("pat-SECRET")), loopback())
			if err != nil {
				t.Fatal(err)
			}
			p, err := c.CreatePage(context.Background(), NewPage{SpaceID: "ENG", ParentID: "1", Title: "T", Body: "<p/>"})
			if elsewhere.Load() != 0 {
				t.Fatalf("the redirect was followed (%d requests off the allowed path)", elsewhere.Load())
			}
			if err == nil {
				t.Fatalf("a redirected write reported success: page %+v", p)
			}
			var re *RedirectError
			if !errors.As(err, &re) || re.StatusCode != code || re.To != srv.URL+"/admin/steal?…" {
				t.Fatalf("err %v (%#v), want a RedirectError to %s/admin/steal?…", err, re, srv.URL)
			}
			if strings.Contains(err.Error(), "LOCATION-SECRET") || strings.Contains(err.Error(), "pat-SECRET") {
				t.Fatalf("secret in %q", err)
			}
		})
	}
}

// Item 3: an endless JSON answer. The bound stops reading; the worker's
// heap stays small. The server stops at 256 MiB so that the test, run
// against an unbounded client, fails without endangering the machine.
func TestEndlessAnswerIsBounded(t *testing.T) {
	const serverCap = 256 << 20
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		item := []byte(`{"id":"1","title":"x","spaceId":"1","status":"current"},`)
		// Large writes, so that a loaded machine streams the bound well
		// inside the client's timeout.
		items := bytes.Repeat(item, (64<<10)/len(item))
		chunk := append([]byte(`{"results":[`), items...)
		for sent := 0; sent < serverCap && r.Context().Err() == nil; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			chunk = items
		}
	}))
	defer srv.Close()
	var observed []Outcome
	var mu sync.Mutex
	c, err := NewCloud(srv.URL, "c1", WithAuthorizer(BearerToken("t")), loopback(), WithMaxAnswerBytes(4<<20),
		WithObserver(func(o Outcome) { mu.Lock(); observed = append(observed, o); mu.Unlock() }))
	if err != nil {
		t.Fatal(err)
	}
	peak := heapPeak(t, func() {
		_, err = c.PageByTitle(context.Background(), "1", "x", false)
	})
	t.Logf("peak heap while reading the endless answer: %.1f MiB", float64(peak)/(1<<20))
	if !errors.Is(err, ErrAnswerTooLarge) {
		t.Fatalf("err %v, want ErrAnswerTooLarge", err)
	}
	if peak > 64<<20 {
		t.Errorf("peak heap %d MiB, want under 64 MiB for a 4 MiB bound", peak>>20)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(observed) != 2 || !observed[1].AnswerTooLarge || observed[0].AnswerTooLarge {
		t.Errorf("observer saw %+v, want the request and then its too-large answer", observed)
	}
}

// heapPeak runs f and samples the heap meanwhile, returning the highest
// HeapAlloc seen.
func heapPeak(t *testing.T, f func()) uint64 {
	t.Helper()
	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	f()
	close(stop)
	wg.Wait()
	return peak.Load()
}

// An answer of exactly the bound still decodes; one byte more does not.
func TestAnswerBoundIsExact(t *testing.T) {
	body := `{"results":[],"_links":{}}`
	for _, tc := range []struct {
		limit int64
		ok    bool
	}{{int64(len(body)), true}, {int64(len(body)) - 1, false}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) }))
		c, err := NewCloud(srv.URL, "c1", WithAuthorizer(BearerToken("t")), loopback(), WithMaxAnswerBytes(tc.limit))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.PageByTitle(context.Background(), "1", "x", false)
		srv.Close()
		if tooLarge := errors.Is(err, ErrAnswerTooLarge); tooLarge == tc.ok {
			t.Errorf("limit %d for %d bytes: %v", tc.limit, len(body), err)
		}
	}
}

// A gzip bomb: a small compressed answer that inflates past the bound. The
// bound counts what the decoder reads, after the transport inflated it.
func TestGzipBombAnswerIsBounded(t *testing.T) {
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	zw.Write([]byte(`{"results":[`))
	item := []byte(`{"id":"1","title":"x"},`)
	for range (64 << 20) / len(item) {
		zw.Write(item)
	}
	zw.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Type", "application/json")
		w.Write(bomb.Bytes())
	}))
	defer srv.Close()
	c, err := NewCloud(srv.URL, "c1", WithAuthorizer(BearerToken("t")), loopback(), WithMaxAnswerBytes(4<<20))
	if err != nil {
		t.Fatal(err)
	}
	peak := heapPeak(t, func() { _, err = c.PageByTitle(context.Background(), "1", "x", false) })
	t.Logf("%d KiB compressed, 64 MiB inflated; peak heap %.1f MiB", bomb.Len()>>10, float64(peak)/(1<<20))
	if !errors.Is(err, ErrAnswerTooLarge) || peak > 64<<20 {
		t.Fatalf("err %v, peak %d MiB", err, peak>>20)
	}
}
