package confluencetest

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Data Center sign-ins (confluence-api.md §3.5) and OAuth 1.0a signature
// verification written from RFC 5849, not from any client library.

// Seraph's X-Seraph-LoginReason values.
const (
	loginFailed = "AUTHENTICATED_FAILED"
	loginDenied = "AUTHENTICATION_DENIED" // the CAPTCHA lock
)

// oauthWindow is how far a request's oauth_timestamp may be from now.
const oauthWindow = 5 * time.Minute

// authenticate returns the request's user, or answers 401 itself.
func (d *DataCenter) authenticate(w http.ResponseWriter, r *http.Request, body []byte) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, _, _ := strings.Cut(h, " ")
	switch strings.ToLower(scheme) {
	case "bearer":
		tok := strings.TrimSpace(h[len(scheme):])
		d.authMu.Lock()
		user, ok := d.pats[tok]
		d.authMu.Unlock()
		if !ok {
			user, ok = d.serviceAccountUser(tok)
		}
		if !ok {
			writeV1Error(w, http.StatusUnauthorized, "Personal access token is invalid or expired")
		}
		return user, ok
	case "basic":
		user, pass, _ := r.BasicAuth()
		reason := d.login(user, pass)
		if reason != "" {
			w.Header().Set("X-Seraph-LoginReason", reason)
			w.Header().Set("WWW-Authenticate", `Basic realm="Confluence"`)
			writeV1Error(w, http.StatusUnauthorized, "Basic authentication failed: "+reason)
			return "", false
		}
		return user, true
	case "oauth":
		user, problem := d.verifyOAuth(r, body)
		if problem != "" {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`OAuth realm="%s", oauth_problem="%s"`, d.BaseURL(), problem))
			writeV1Error(w, http.StatusUnauthorized, "OAuth problem: "+problem)
			return "", false
		}
		return user, true
	}
	writeV1Error(w, http.StatusUnauthorized, "This resource requires authentication")
	return "", false
}

// login checks a password: "" when it is right, else Seraph's reason.
// After loginLimit failures the user is locked until UnlockUser (the
// CAPTCHA solved in a browser), whatever password comes next.
func (d *DataCenter) login(user, pass string) string {
	d.authMu.Lock()
	defer d.authMu.Unlock()
	u := d.users[user]
	switch {
	case u != nil && u.locked:
		return loginDenied
	case u != nil && u.password == pass:
		u.failed = 0
		return ""
	case u != nil:
		u.failed++
		u.locked = u.failed >= d.loginLimit
	}
	return loginFailed
}

// verifyOAuth checks an OAuth 1.0a RSA-SHA1 request (RFC 5849 §3.2) and
// returns its user, or the oauth_problem to report.
func (d *DataCenter) verifyOAuth(r *http.Request, body []byte) (user, problem string) {
	params, err := parseOAuthHeader(r.Header.Get("Authorization"))
	if err != nil {
		return "", "parameter_rejected"
	}
	for _, p := range []string{"oauth_consumer_key", "oauth_token", "oauth_signature_method", "oauth_signature", "oauth_timestamp", "oauth_nonce"} {
		if params[p] == "" {
			return "", "parameter_absent"
		}
	}
	if params["oauth_signature_method"] != "RSA-SHA1" {
		return "", "signature_method_rejected"
	}
	if v, ok := params["oauth_version"]; ok && v != "1.0" {
		return "", "version_rejected"
	}
	ts, err := strconv.ParseInt(params["oauth_timestamp"], 10, 64)
	if err != nil || time.Since(time.Unix(ts, 0)).Abs() > oauthWindow {
		return "", "timestamp_refused"
	}
	sig, err := base64.StdEncoding.DecodeString(params["oauth_signature"])
	if err != nil {
		return "", "signature_invalid"
	}
	base, err := signatureBase(r, body, params)
	if err != nil {
		return "", "parameter_rejected"
	}

	d.authMu.Lock()
	defer d.authMu.Unlock()
	pub := d.consumers[params["oauth_consumer_key"]]
	if pub == nil {
		return "", "consumer_key_unknown"
	}
	grant, ok := d.tokens[params["oauth_token"]]
	if !ok || grant.consumerKey != params["oauth_consumer_key"] {
		return "", "token_rejected"
	}
	sum := sha1.Sum([]byte(base))
	if rsa.VerifyPKCS1v15(pub, crypto.SHA1, sum[:], sig) != nil {
		return "", "signature_invalid"
	}
	// A nonce is unique per consumer, token and timestamp (RFC 5849 §3.3).
	nonce := strings.Join([]string{params["oauth_consumer_key"], params["oauth_token"], params["oauth_timestamp"], params["oauth_nonce"]}, "\x00")
	if d.nonces[nonce] {
		return "", "nonce_used"
	}
	d.nonces[nonce] = true
	d.verified++
	return grant.user, ""
}

// parseOAuthHeader reads `OAuth k="v", …` (RFC 5849 §3.5.1); names and
// values are percent-encoded.
func parseOAuthHeader(h string) (map[string]string, error) {
	scheme, rest, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "OAuth") {
		return nil, fmt.Errorf("not an OAuth header")
	}
	params := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok || len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
			return nil, fmt.Errorf("malformed parameter %q", part)
		}
		name, err1 := url.PathUnescape(k)
		value, err2 := url.PathUnescape(v[1 : len(v)-1])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("malformed parameter %q", part)
		}
		params[name] = value
	}
	return params, nil
}

// signatureBase builds the signature base string of RFC 5849 §3.4.1:
// METHOD & encoded base string URI & encoded normalized parameters, the
// parameters being the query, a form body, and the OAuth header's own
// (without realm and oauth_signature).
func signatureBase(r *http.Request, body []byte, oauth map[string]string) (string, error) {
	var pairs [][2]string
	add := func(k, v string) { pairs = append(pairs, [2]string{percentEncode(k), percentEncode(v)}) }
	addForm := func(raw string) error {
		vals, err := url.ParseQuery(raw)
		for k, vs := range vals {
			for _, v := range vs {
				add(k, v)
			}
		}
		return err
	}
	if err := addForm(r.URL.RawQuery); err != nil {
		return "", err
	}
	// A single-part form body is signed too (RFC 5849 §3.4.1.3.1).
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
		if err := addForm(string(body)); err != nil {
			return "", err
		}
	}
	for k, v := range oauth {
		if k != "realm" && k != "oauth_signature" {
			add(k, v)
		}
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i][0] != pairs[j][0] {
			return pairs[i][0] < pairs[j][0]
		}
		return pairs[i][1] < pairs[j][1]
	})
	norm := make([]string, len(pairs))
	for i, p := range pairs {
		norm[i] = p[0] + "=" + p[1]
	}
	return strings.ToUpper(r.Method) + "&" + percentEncode(baseStringURI(r)) + "&" + percentEncode(strings.Join(norm, "&")), nil
}

// baseStringURI is scheme://host[:port]/path with scheme and host in lower
// case and the default port left out (RFC 5849 §3.4.1.2).
func baseStringURI(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := strings.ToLower(r.Host)
	if h, p, ok := strings.Cut(host, ":"); ok && (scheme == "http" && p == "80" || scheme == "https" && p == "443") {
		host = h
	}
	return scheme + "://" + host + r.URL.EscapedPath()
}

// percentEncode is RFC 5849 §3.6: everything but ALPHA, DIGIT, "-", ".",
// "_" and "~" as %XX with upper-case hex.
func percentEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}
