package confluence

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestInternalKind(t *testing.T) {
	cases := map[string]string{
		"169.254.169.254":  "link-local (cloud metadata service)",
		"169.254.1.1":      "link-local",
		"fe80::1":          "link-local",
		"10.0.0.5":         "private",
		"172.16.3.4":       "private",
		"192.168.1.1":      "private",
		"fd00::1":          "private",
		"127.0.0.1":        "loopback",
		"127.9.9.9":        "loopback",
		"::1":              "loopback",
		"::ffff:127.0.0.1": "loopback",
		"100.64.0.1":       "carrier-grade NAT (100.64.0.0/10)",
		"224.0.0.251":      "multicast",
		"ff02::1":          "multicast",
		"0.0.0.0":          "unspecified",
		"0.1.2.3":          "unspecified",
		"::":               "unspecified",
		"255.255.255.255":  "reserved",
		"64:ff9b::a00:5":   "private", // NAT64 of 10.0.0.5
		"8.8.8.8":          "",
		"2606:4700::1111":  "",
		"64:ff9b::808:808": "", // NAT64 of 8.8.8.8
	}
	for addr, want := range cases {
		if got := internalKind(netip.MustParseAddr(addr).Unmap()); got != want {
			t.Errorf("%s: %q, want %q", addr, got, want)
		}
	}
}

func TestEgressCheck(t *testing.T) {
	_, lo, _ := net.ParseCIDR("127.0.0.1/32")
	_, corp, _ := net.ParseCIDR("10.20.0.0/16")
	e := &egress{allow: []*net.IPNet{lo, corp}}
	cases := []struct {
		addr  string
		plain bool
		ok    bool
	}{
		{"127.0.0.1", true, true},
		{"127.0.0.2", false, false},
		{"10.20.1.1", true, true},
		{"10.21.1.1", false, false},
		{"8.8.8.8", false, true},
		{"8.8.8.8", true, false}, // plain http only to allowed networks
		{"169.254.169.254", false, false},
	}
	for _, c := range cases {
		err := e.check(netip.MustParseAddr(c.addr), c.plain)
		if (err == nil) != c.ok || err != nil && !errors.Is(err, ErrEgressRefused) {
			t.Errorf("%s plain=%v: %v", c.addr, c.plain, err)
		}
	}
}

func TestNewServerBaseURL(t *testing.T) {
	auth := WithAuthorizer(BearerToken("t"))
	cases := map[string]struct{ base, instance string }{
		"https://Wiki.Example.com/confluence/":  {"https://wiki.example.com/confluence", "server:wiki.example.com/confluence"},
		"https://wiki.example.com:443//wiki//":  {"https://wiki.example.com/wiki", "server:wiki.example.com/wiki"},
		"http://10.1.2.3:8090":                  {"http://10.1.2.3:8090", "server:10.1.2.3:8090"},
		" HTTPS://wiki.example.com/confluence ": {"https://wiki.example.com/confluence", "server:wiki.example.com/confluence"},
	}
	for raw, want := range cases {
		c, err := NewServer(raw, auth)
		if err != nil {
			t.Errorf("%q: %v", raw, err)
			continue
		}
		if c.base.String() != want.base || c.Instance() != want.instance {
			t.Errorf("%q: base %s instance %s, want %s %s", raw, c.base, c.Instance(), want.base, want.instance)
		}
	}
	for _, bad := range []string{"ftp://wiki", "https://", "https://u:p@wiki.example.com", "https://wiki.example.com/?x=1", "wiki.example.com"} {
		if _, err := NewServer(bad, auth); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// v1 paths land at the context path on Server (no /wiki), and
// the allowlist then applies the Server list.
func TestServerV1PathsAndAllowlist(t *testing.T) {
	c, err := NewServer("https://wiki.example.com/confluence", WithAuthorizer(BearerToken("t")))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.attachmentPath("123"); got != "/rest/api/content/123/child/attachment" {
		t.Errorf("attachment path %s", got)
	}
	err = c.do(context.Background(), request{method: "GET", path: "/rest/api/content/123"}, nil)
	if !errors.Is(err, ErrNotAllowed) {
		t.Errorf("GET /rest/api/content/{id} on Server: %v, want not allowed", err)
	}
}

func TestAppLinkSigns(t *testing.T) {
	if _, err := AppLink("k", "not a key", "tok", "s"); err == nil || strings.Contains(err.Error(), "not a key") {
		t.Fatalf("bad key: %v", err)
	}
	a, err := AppLink("retropub", testRSAKeyPEM(t), "tok", "secret")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "https://wiki.example.com/confluence/rest/api/space?spaceKey=ENG", nil)
	if err := a.Authorize(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	h := req.Header.Get("Authorization")
	for _, want := range []string{"OAuth ", `oauth_signature_method="RSA-SHA1"`, `oauth_consumer_key="retropub"`, `oauth_token="tok"`, "oauth_signature="} {
		if !strings.Contains(h, want) {
			t.Errorf("Authorization %q lacks %s", h, want)
		}
	}
	if strings.Contains(h, "secret") {
		t.Error("the token secret leaked into the header")
	}
}

func testRSAKeyPEM(t *testing.T) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
}

func TestBasicPrintsNoPassword(t *testing.T) {
	if s := fmt.Sprintf("%v %+v", Basic("bob", "hunter2"), Basic("bob", "hunter2")); strings.Contains(s, "hunter2") {
		t.Fatalf("printed %q", s)
	}
}

// Figures for the report: the cost of signing one request (RSA-2048).
func BenchmarkAppLinkAuthorize(b *testing.B) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
	a, err := AppLink("retropub", keyPEM, "tok", "secret")
	if err != nil {
		b.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "https://wiki.example.com/confluence/rest/api/content?spaceKey=ENG&title=Retro", nil)
	for b.Loop() {
		if err := a.Authorize(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

// Figures for the report: the egress check at dial time.
func BenchmarkEgressCheck(b *testing.B) {
	_, lo, _ := net.ParseCIDR("127.0.0.1/32")
	e := &egress{allow: []*net.IPNet{lo}}
	a := netip.MustParseAddr("93.184.216.34")
	for b.Loop() {
		_ = e.check(a, false)
	}
}

// Trust comes from the code path (issue 13 item 9): the Cloud client and
// TrustedClient reach a loopback gateway without CONFLUENCE_ALLOW_CIDRS; a
// Server client and the plain client on the same origin do not.
func TestTrustFromCodePathOnly(t *testing.T) {
	var hits atomic.Int64
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprint(w, `{"results":[]}`)
	}))
	defer gw.Close()
	hc := NewHTTPClient(5*time.Second, 2)
	auth := WithAuthorizer(BearerToken("t"))
	cloud, err := NewCloud(gw.URL, "c1", auth, WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cloud.PageByTitle(context.Background(), "1", "x", false); err != nil && !errors.Is(err, ErrNotFound) {
		t.Fatalf("Cloud client to the configured gateway: %v", err)
	}
	resp, err := TrustedClient(hc).Get(gw.URL + "/oauth/token/accessible-resources")
	if err != nil {
		t.Fatalf("trusted client: %v", err)
	}
	resp.Body.Close()
	before := hits.Load()
	server, err := NewServer(gw.URL, auth, WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	var ee *EgressError
	if _, err := server.SpaceByKey(context.Background(), "ENG"); !errors.As(err, &ee) {
		t.Fatalf("Server client on the gateway's origin: %v, want EgressError", err)
	}
	if _, err := hc.Get(gw.URL); !errors.As(err, &ee) {
		t.Fatalf("untrusted client: %v, want EgressError", err)
	}
	if hits.Load() != before {
		t.Fatalf("%d untrusted requests reached loopback", hits.Load()-before)
	}
}
