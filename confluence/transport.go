package confluence

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"syscall"
	"time"
)

// Egress (DESIGN §4): a Server/Data Center base URL is typed in by a
// customer, so it is the classic SSRF door. Every Confluence and Atlassian
// request therefore goes through one policy:
//
//   - Direct: the dialer checks the address it is about to connect to
//     (net.Dialer.ControlContext, after DNS), so host names that resolve to
//     internal addresses are refused too, and a DNS
//     answer that changes between a check and the dial cannot slip through.
//   - Through EGRESS_PROXY_URL: the dialer only ever dials the proxy, which
//     the operator configured and trusts; the target host is resolved and
//     checked before each request is handed to the proxy.
//
// Loopback, private (RFC 1918, ULA), link-local (169.254.169.254 included),
// CGNAT, multicast, unspecified and reserved addresses are refused unless an
// allowed network contains them; plain http is sent only to addresses in an
// allowed network. A refusal is an *EgressError; nothing is sent.

// HTTPOption configures NewHTTPClient.
type HTTPOption func(*egress)

// AllowCIDRs lets requests reach these networks although they are internal
// (CONFLUENCE_ALLOW_CIDRS). Plain http is allowed only to them.
func AllowCIDRs(nets ...*net.IPNet) HTTPOption {
	return func(e *egress) { e.allow = append(e.allow, nets...) }
}

// HeaderTimeout bounds the wait for an answer's headers (0: none beyond
// the client's timeout). Attachment downloads use it: their whole-body
// timeout is long.
func HeaderTimeout(d time.Duration) HTTPOption { return func(e *egress) { e.headerTimeout = d } }

// ViaProxy sends every request through the proxy at u (EGRESS_PROXY_URL:
// http, https or socks5); nil sends directly.
func ViaProxy(u *url.URL) HTTPOption { return func(e *egress) { e.proxy = u } }

// NewHTTPClient returns the client every Confluence client of a process
// should share: the egress policy, a per-request timeout, enough idle
// connections per host for the worker's concurrency, and no redirects
// followed at all (redirect.go). Environment proxy variables are ignored:
// only ViaProxy routes through a proxy, so the policy cannot be bypassed by
// the process environment.
func NewHTTPClient(timeout time.Duration, idlePerHost int, opts ...HTTPOption) *http.Client {
	pol := &egress{resolver: net.DefaultResolver}
	for _, o := range opts {
		o(pol)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 0
	tr.MaxIdleConnsPerHost = max(idlePerHost, 2)
	tr.ResponseHeaderTimeout = pol.headerTimeout
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	tr.Proxy = nil
	if pol.proxy != nil {
		tr.Proxy = pol.proxyFor
	} else {
		d.ControlContext = pol.control
	}
	tr.DialContext = d.DialContext
	et := &egressTransport{policy: pol, base: tr, cas: &caCache{root: tr, byHash: map[[32]byte]*egressTransport{}}}
	return &http.Client{Transport: et, Timeout: timeout, CheckRedirect: checkRedirect}
}

func origin(u *url.URL) string { return u.Scheme + "://" + u.Host }

// egress is the policy: which networks are allowed, and the proxy.
type egress struct {
	allow    []*net.IPNet
	proxy    *url.URL
	resolver *net.Resolver
	// headerTimeout is the transport's ResponseHeaderTimeout (HeaderTimeout).
	headerTimeout time.Duration
}

// plainHTTPKey marks a dial made for a plain-http request; trustedKey one
// made on a trusted code path (trust.go).
type (
	plainHTTPKey struct{}
	trustedKey   struct{}
)

// control runs after DNS, before connect: address is the IP about to be dialed.
func (e *egress) control(ctx context.Context, _, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &EgressError{Kind: "unparsable"}
	}
	if isTrusted(ctx) {
		return nil
	}
	plain, _ := ctx.Value(plainHTTPKey{}).(bool)
	return e.check(ap.Addr(), plain)
}

// proxyFor checks the target of a request and names the proxy for it.
func (e *egress) proxyFor(req *http.Request) (*url.URL, error) {
	if isTrusted(req.Context()) {
		return e.proxy, nil
	}
	host := req.URL.Hostname()
	plain := req.URL.Scheme == "http"
	if a, err := netip.ParseAddr(host); err == nil {
		return e.proxy, e.check(a, plain)
	}
	addrs, err := e.resolver.LookupNetIP(req.Context(), "ip", host)
	if err != nil {
		// Not a refusal: DNS may come back. The target must be checkable.
		return nil, fmt.Errorf("resolve %s to check it against the egress policy: %w", host, err)
	}
	for _, a := range addrs {
		if err := e.check(a, plain); err != nil {
			return nil, err
		}
	}
	return e.proxy, nil
}

// check refuses internal addresses unless allowed, and plain http to any
// address that is not allowed.
func (e *egress) check(a netip.Addr, plain bool) error {
	a = a.Unmap()
	if e.allows(a) {
		return nil
	}
	if kind := internalKind(a); kind != "" {
		return &EgressError{Addr: a, Kind: kind}
	}
	if plain {
		return &EgressError{Addr: a, PlainHTTP: true}
	}
	return nil
}

func (e *egress) allows(a netip.Addr) bool {
	ip := net.IP(a.AsSlice())
	for _, n := range e.allow {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

var (
	metadataAddr = netip.MustParseAddr("169.254.169.254")
	cgnat        = netip.MustParsePrefix("100.64.0.0/10")
	thisNetwork  = netip.MustParsePrefix("0.0.0.0/8")
	reserved4    = netip.MustParsePrefix("240.0.0.0/4") // includes 255.255.255.255
	nat64        = netip.MustParsePrefix("64:ff9b::/96")
)

// internalKind names why an address is not a public one, or "".
func internalKind(a netip.Addr) string {
	switch {
	case a.IsUnspecified(), thisNetwork.Contains(a):
		return "unspecified"
	case a.IsLoopback():
		return "loopback"
	case a.IsPrivate():
		return "private"
	case a == metadataAddr:
		return "link-local (cloud metadata service)"
	case a.IsLinkLocalUnicast():
		return "link-local"
	case a.IsMulticast():
		return "multicast"
	case cgnat.Contains(a):
		return "carrier-grade NAT (100.64.0.0/10)"
	case reserved4.Contains(a):
		return "reserved"
	case nat64.Contains(a):
		// NAT64 reaches the IPv4 address in the last four bytes.
		b := a.As16()
		return internalKind(netip.AddrFrom4([4]byte(b[12:])))
	}
	return ""
}

// egressTransport marks plain-http requests for the dialer and holds the
// per-CA transports derived from it.
type egressTransport struct {
	policy *egress
	base   *http.Transport
	cas    *caCache
}

func (t *egressTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	switch {
	case isTrusted(req.Context()):
		// Marked by a trusted code path (trust.go); the dialer sees it.
	case req.URL.Scheme == "http":
		req = req.WithContext(context.WithValue(req.Context(), plainHTTPKey{}, true))
	}
	return t.base.RoundTrip(req)
}

// caCache keeps one transport per extra CA bundle, so the clients of every
// integration that shares a CA share its connection pool.
type caCache struct {
	root   *http.Transport
	mu     sync.Mutex
	byHash map[[32]byte]*egressTransport
}

// withCA returns a transport that trusts the system roots plus the PEM
// certificates in caPEM, with the same egress policy.
func (t *egressTransport) withCA(caPEM string) (*egressTransport, error) {
	key := sha256.Sum256([]byte(caPEM))
	t.cas.mu.Lock()
	defer t.cas.mu.Unlock()
	if ct, ok := t.cas.byHash[key]; ok {
		return ct, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM([]byte(caPEM)) {
		return nil, errors.New("confluence: ca_pem holds no PEM certificate")
	}
	tr := t.cas.root.Clone()
	cfg := &tls.Config{}
	if tr.TLSClientConfig != nil {
		cfg = tr.TLSClientConfig.Clone()
	}
	cfg.RootCAs = pool
	tr.TLSClientConfig = cfg
	ct := &egressTransport{policy: t.policy, base: tr, cas: t.cas}
	t.cas.byHash[key] = ct
	return ct, nil
}

// clientWithCA derives from hc a client that also trusts caPEM. hc must
// come from NewHTTPClient: a private CA never goes around the egress policy.
func clientWithCA(hc *http.Client, caPEM string) (*http.Client, error) {
	et, ok := hc.Transport.(*egressTransport)
	if !ok {
		return nil, errors.New("confluence: ca_pem needs an HTTP client made by NewHTTPClient")
	}
	ct, err := et.withCA(caPEM)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: ct, Timeout: hc.Timeout, CheckRedirect: hc.CheckRedirect, Jar: hc.Jar}, nil
}

// EgressError is a request the egress policy refused before sending it.
type EgressError struct {
	URL       string // scheme://host[:port] of the target, filled in by the client
	Addr      netip.Addr
	Kind      string // why the address is internal, e.g. "loopback"
	PlainHTTP bool   // refused because plain http goes only to allowed networks
}

func (e *EgressError) Error() string {
	target := e.URL
	if target == "" {
		target = "the target"
	}
	if e.PlainHTTP {
		return fmt.Sprintf("confluence: refused plain http to %s (%s): use https; http is allowed only to addresses in CONFLUENCE_ALLOW_CIDRS", target, e.Addr)
	}
	return fmt.Sprintf("confluence: refused to connect to %s: it resolves to %s, a %s address; such addresses are reached only when CONFLUENCE_ALLOW_CIDRS allows them", target, e.Addr, e.Kind)
}

// Is makes errors.Is(err, ErrEgressRefused) true.
func (e *EgressError) Is(target error) bool { return target == ErrEgressRefused }

// CertificateError is a TLS certificate the client does not trust.
// Verification is never switched off; a private CA goes into ca_pem.
type CertificateError struct {
	URL string
	Err error
}

func (e *CertificateError) Error() string {
	var he x509.HostnameError
	if errors.As(e.Err, &he) {
		return fmt.Sprintf("confluence: TLS certificate of %s is not valid for that host name: %v — fix base_url or the server's certificate", e.URL, e.Err)
	}
	return fmt.Sprintf("confluence: TLS certificate of %s not trusted: %v — add the CA to the integration's ca_pem", e.URL, e.Err)
}

// Is makes errors.Is(err, ErrCertificate) true.
func (e *CertificateError) Is(target error) bool { return target == ErrCertificate }
func (e *CertificateError) Unwrap() error        { return e.Err }

// Sentinels for refusals that no retry can fix.
var (
	ErrEgressRefused = errors.New("confluence: refused by the egress policy")
	ErrCertificate   = errors.New("confluence: TLS certificate not trusted")
)

// sendError types what came back from the HTTP client without an answer:
// refusals and certificate failures get their own types (permanent), the
// rest is a *TransportError (a write may have happened).
func sendError(r request, u *url.URL, err error) error {
	var (
		eg *EgressError
		cv *tls.CertificateVerificationError
		se *SourceError
	)
	switch {
	case errors.As(err, &se):
		return se
	case errors.As(err, &eg):
		c := *eg
		c.URL = origin(u)
		return &c
	case errors.As(err, &cv):
		return &CertificateError{URL: origin(u), Err: cv.Err}
	}
	return &TransportError{Method: r.method, Path: r.path, Err: stripURL(err)}
}
