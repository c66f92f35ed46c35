package jobs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Attachment downloads go through the egress policy (issue 13 item 10).

// A host name in ATTACHMENT_URL_HOSTS that resolves to an internal address
// is refused when it is dialled, before a byte is sent.
func TestDownloadChecksTheAddressAtDialTime(t *testing.T) {
	var hits atomic.Int64
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1); w.Write([]byte("%PDF")) }))
	defer src.Close()
	_, port, _ := net.SplitHostPort(src.Listener.Addr().String())
	f := &fetcher{client: NewDownloadClient(5 * time.Second), hosts: []string{"localhost"}, maxBytes: 1 << 20}
	_, err := f.load(context.Background(), Attachment{Filename: "x.pdf", URL: "http://localhost:" + port + "/x.pdf"})
	var pe *PermanentError
	if hits.Load() != 0 || err == nil || !strings.Contains(err.Error(), "CONFLUENCE_ALLOW_CIDRS") {
		t.Fatalf("download from localhost: %v (%d requests reached it), want an egress refusal", err, hits.Load())
	}
	if !errors.As(err, &pe) {
		t.Errorf("egress refusal %v is retried, want permanent", err)
	}
}

// HTTP_PROXY from the process environment is not honoured: only
// EGRESS_PROXY_URL routes downloads through a proxy. Go reads the
// environment once per process, so the check runs in a child process.
func TestDownloadIgnoresHTTPProxyFromEnvironment(t *testing.T) {
	if os.Getenv("RETROPUB_TEST_PROXY_CHILD") == "1" {
		// 192.0.2.10 (TEST-NET-1) over plain http is refused by the dialer
		// before it connects; through the env proxy it would be fetched.
		f := &fetcher{client: NewDownloadClient(5 * time.Second), hosts: []string{"192.0.2.10"}, maxBytes: 1 << 20}
		_, err := f.load(context.Background(), Attachment{Filename: "x.pdf", URL: "http://192.0.2.10/x.pdf?sig=S"})
		if err == nil || !strings.Contains(err.Error(), "refused plain http") {
			fmt.Println("CHILD-FAIL:", err)
			os.Exit(1)
		}
		return
	}
	var proxied atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { proxied.Add(1); w.Write([]byte("%PDF")) }))
	defer proxy.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDownloadIgnoresHTTPProxyFromEnvironment$")
	cmd.Env = append(os.Environ(), "RETROPUB_TEST_PROXY_CHILD=1", "HTTP_PROXY="+proxy.URL, "http_proxy="+proxy.URL)
	out, err := cmd.CombinedOutput()
	if proxied.Load() != 0 {
		t.Fatalf("the download went through HTTP_PROXY (%d requests)", proxied.Load())
	}
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// A redirect from https to http is not followed, even to an allowed host.
func TestDownloadRedirectToPlainHTTPRefused(t *testing.T) {
	var plainHits atomic.Int64
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { plainHits.Add(1) }))
	defer plain.Close()
	tlsSrc := httptest.NewTLSServer(http.RedirectHandler(plain.URL+"/x.pdf", http.StatusFound))
	defer tlsSrc.Close()
	f := &fetcher{client: tlsSrc.Client(), hosts: []string{"127.0.0.1"}, maxBytes: 1 << 20}
	_, err := f.load(context.Background(), Attachment{Filename: "x.pdf", URL: tlsSrc.URL + "/x.pdf"})
	if plainHits.Load() != 0 || err == nil || !strings.Contains(err.Error(), "from https to http") {
		t.Fatalf("https→http redirect: %v (%d requests over http)", err, plainHits.Load())
	}
}
