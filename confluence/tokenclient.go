package confluence

import "net/http"

// HTTPClientWithCA returns the client for calls that go around Client to
// an integration's own host — a Data Center service account's token
// endpoint on its base_url: hc itself, or, with an integration's ca_pem,
// a client derived from hc that also trusts it. The egress policy is
// hc's in both cases; hc must come from NewHTTPClient when caPEM is set.
func HTTPClientWithCA(hc *http.Client, caPEM string) (*http.Client, error) {
	if caPEM == "" {
		return hc, nil
	}
	return clientWithCA(hc, caPEM)
}
