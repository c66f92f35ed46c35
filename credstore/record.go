package credstore

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Auth kinds.
const (
	KindOAuth2  = "oauth2"  // Confluence Cloud, 3LO
	KindPAT     = "pat"     // Server/DC personal access token
	KindBasic   = "basic"   // Server/DC username + password
	KindAppLink = "applink" // Server/DC Application Link, OAuth 1.0a RSA-SHA1
	// KindClientCredentials is a service account's OAuth 2.0 client
	// credentials (DESIGN §11), on Cloud and on Data Center.
	KindClientCredentials = "oauth2_client"
)

// Flavors and edit policies.
const (
	FlavorCloud  = "cloud"
	FlavorServer = "server"

	EditOverwrite = "overwrite"
	EditKeep      = "keep"
)

// Auth holds the credentials of one integration. Only the fields of its Kind
// are set. applink reuses AccessToken for its OAuth 1.0a token, as DESIGN §3
// names both "access_token".
type Auth struct {
	Kind string `json:"kind"`

	// oauth2 (AccessToken also for applink)
	AccessToken  Secret    `json:"access_token,omitempty"`
	RefreshToken Secret    `json:"refresh_token,omitempty"`
	ExpiresAt    time.Time `json:"expires_at,omitzero"`
	Scopes       []string  `json:"scopes,omitempty"`
	// RefreshedAt is when AccessToken came from the token endpoint; kept by
	// the store, never read from a record file.
	RefreshedAt time.Time `json:"-"`

	// pat
	Token Secret `json:"token,omitempty"`

	// basic
	Username string `json:"username,omitempty"`
	Password Secret `json:"password,omitempty"`

	// applink
	ConsumerKey   string `json:"consumer_key,omitempty"`
	PrivateKeyPEM Secret `json:"private_key_pem,omitempty"`
	TokenSecret   Secret `json:"token_secret,omitempty"`

	// oauth2_client (AccessToken and ExpiresAt cache the last token fetched)
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret Secret `json:"client_secret,omitempty"`
}

// Status records why an integration cannot be used until an admin acts.
type Status struct {
	NeedsReauth bool      `json:"needs_reauth,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	Since       time.Time `json:"since,omitzero"`
}

// Record is one integration: where its Confluence is and how to sign in.
type Record struct {
	ID         string    `json:"id"`
	Flavor     string    `json:"flavor"`
	CloudID    string    `json:"cloud_id,omitempty"`
	SiteURL    string    `json:"site_url,omitempty"`
	BaseURL    string    `json:"base_url,omitempty"`
	CAPEM      string    `json:"ca_pem,omitempty"`
	EditPolicy string    `json:"edit_policy,omitempty"`
	Auth       Auth      `json:"auth"`
	Status     Status    `json:"status,omitzero"`
	UpdatedAt  time.Time `json:"updated_at,omitzero"`
}

// View is the part of a record that is safe to print: no secrets.
type View struct {
	ID              string    `json:"id"`
	Flavor          string    `json:"flavor"`
	CloudID         string    `json:"cloud_id,omitempty"`
	SiteURL         string    `json:"site_url,omitempty"`
	BaseURL         string    `json:"base_url,omitempty"`
	EditPolicy      string    `json:"edit_policy"`
	AuthKind        string    `json:"auth_kind"`
	Scopes          []string  `json:"scopes,omitempty"`
	ExpiresAt       time.Time `json:"expires_at,omitzero"`
	HasRefreshToken bool      `json:"has_refresh_token,omitempty"`
	ClientID        string    `json:"client_id,omitempty"`
	Status          Status    `json:"status,omitzero"`
	UpdatedAt       time.Time `json:"updated_at,omitzero"`
}

// View returns the printable summary; an empty edit policy shows as the
// default, overwrite.
func (r *Record) View() View {
	return View{
		ID: r.ID, Flavor: r.Flavor, CloudID: r.CloudID, SiteURL: r.SiteURL, BaseURL: r.BaseURL,
		EditPolicy: editPolicy(r.EditPolicy), AuthKind: r.Auth.Kind,
		Scopes: r.Auth.Scopes, ExpiresAt: r.Auth.ExpiresAt, HasRefreshToken: r.Auth.RefreshToken != "",
		ClientID: r.Auth.ClientID, Status: r.Status, UpdatedAt: r.UpdatedAt,
	}
}

func editPolicy(p string) string {
	if p == "" {
		return EditOverwrite
	}
	return p
}

// DecodeRecord reads one JSON record, rejecting unknown fields and trailing
// data, and validates it.
func DecodeRecord(r io.Reader) (*Record, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var rec Record
	if err := dec.Decode(&rec); err != nil {
		return nil, fmt.Errorf("integration record: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("integration record: unexpected data after the JSON object")
	}
	if err := rec.Validate(); err != nil {
		return nil, err
	}
	return &rec, nil
}

// FieldError is one problem with a record, naming the JSON field.
type FieldError struct {
	Field  string // e.g. "auth.access_token"
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// IDPattern is what integration ids look like (DESIGN §2): Redis keys and
// asynq TaskIDs embed them, so they must stay unambiguous.
var IDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// kinds lists, per auth kind, the fields it may set and those it must set.
// A field of another kind is an error, so a stray secret is never stored.
var kinds = map[string]struct{ uses, required []string }{
	KindOAuth2: {[]string{"access_token", "refresh_token", "expires_at", "scopes"}, []string{"access_token"}},
	KindPAT:    {[]string{"token"}, []string{"token"}},
	KindBasic:  {[]string{"username", "password"}, []string{"username", "password"}},
	// RSA-SHA1 signatures never use the token secret (RFC 5849 §3.4.3: the
	// key is the consumer's RSA key alone), and administrators often have
	// none to give: it is optional, and sealed like any secret when given.
	KindAppLink: {[]string{"consumer_key", "private_key_pem", "access_token", "token_secret"}, []string{"consumer_key", "private_key_pem", "access_token"}},
	// A service account's access token is fetched, never given: the store
	// caches it in the record (see cachedToken).
	KindClientCredentials: {[]string{"client_id", "client_secret", "scopes"}, []string{"client_id", "client_secret"}},
}

// authFields is every auth field but kind, in a fixed order for stable messages.
var authFields = []string{"access_token", "refresh_token", "expires_at", "scopes", "token",
	"username", "password", "consumer_key", "private_key_pem", "token_secret", "client_id", "client_secret"}

func (a *Auth) setFields() map[string]bool {
	return map[string]bool{
		"access_token": a.AccessToken != "", "refresh_token": a.RefreshToken != "",
		"expires_at": !a.ExpiresAt.IsZero(), "scopes": len(a.Scopes) > 0,
		"token": a.Token != "", "username": a.Username != "", "password": a.Password != "",
		"consumer_key": a.ConsumerKey != "", "private_key_pem": a.PrivateKeyPEM != "",
		"token_secret": a.TokenSecret != "",
		"client_id":    a.ClientID != "", "client_secret": a.ClientSecret != "",
	}
}

// cachedToken: an oauth2_client record holds the access token the store
// fetched for it (RefreshedAt is set only by the store, never read from a
// record file), which validation does not count as given.
func (a *Auth) cachedToken(field string) bool {
	return a.Kind == KindClientCredentials && !a.RefreshedAt.IsZero() &&
		(field == "access_token" || field == "expires_at")
}

// Validate reports every problem at once (errors.Join of *FieldError).
// Messages name fields, never values: values may be secrets.
func (r *Record) Validate() error {
	var errs []error
	bad := func(field, reason string) { errs = append(errs, &FieldError{field, reason}) }
	a := &r.Auth
	kind, knownKind := kinds[a.Kind]

	if !IDPattern.MatchString(r.ID) {
		bad("id", "must match [A-Za-z0-9._-]{1,128}")
	}
	switch r.Flavor {
	case FlavorCloud:
		if r.CloudID == "" && r.SiteURL == "" {
			bad("cloud_id", "cloud_id or site_url is required for flavor cloud")
		}
		// The cloud id goes into the API path /ex/confluence/{cloud_id}.
		if r.CloudID != "" && !IDPattern.MatchString(r.CloudID) {
			bad("cloud_id", "must match [A-Za-z0-9._-]{1,128}")
		}
		if r.SiteURL != "" && !validURL(r.SiteURL, "https") {
			bad("site_url", "must be an absolute https URL without credentials")
		}
		if knownKind && a.Kind != KindOAuth2 && a.Kind != KindClientCredentials {
			bad("auth.kind", "must be oauth2 or oauth2_client for flavor cloud")
		}
	case FlavorServer:
		if r.BaseURL == "" {
			bad("base_url", "required for flavor server")
		}
		if a.Kind == KindOAuth2 {
			bad("auth.kind", "must be pat, basic, applink or oauth2_client for flavor server")
		}
	default:
		bad("flavor", "must be cloud or server")
	}
	if r.BaseURL != "" && !validURL(r.BaseURL, "https", "http") {
		bad("base_url", "must be an absolute http(s) URL without credentials")
	}
	if r.CAPEM != "" {
		if err := checkCerts(r.CAPEM); err != nil {
			bad("ca_pem", err.Error())
		}
	}
	switch r.EditPolicy {
	case "", EditOverwrite, EditKeep:
	default:
		bad("edit_policy", "must be overwrite or keep")
	}

	if !knownKind {
		bad("auth.kind", "must be oauth2, oauth2_client, pat, basic or applink")
		return errors.Join(errs...)
	}
	set := a.setFields()
	for _, f := range authFields {
		if set[f] && !slices.Contains(kind.uses, f) && !a.cachedToken(f) {
			bad("auth."+f, "not used by kind "+a.Kind)
		}
	}
	for _, f := range kind.required {
		if !set[f] {
			bad("auth."+f, "required for kind "+a.Kind)
		}
	}
	if a.Kind == KindClientCredentials {
		checkClientCredentials(a, bad)
	}
	if a.Kind == KindAppLink && a.PrivateKeyPEM != "" {
		if err := checkRSAKey(a.PrivateKeyPEM.Reveal()); err != nil {
			bad("auth.private_key_pem", err.Error())
		}
	}
	return errors.Join(errs...)
}

func validURL(raw string, schemes ...string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return false
	}
	for _, s := range schemes {
		if u.Scheme == s {
			return true
		}
	}
	return false
}

// checkCerts accepts one or more PEM CERTIFICATE blocks and nothing else.
func checkCerts(s string) error {
	rest := []byte(s)
	n := 0
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return fmt.Errorf("PEM block %d is %q, want CERTIFICATE", n+1, b.Type)
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return fmt.Errorf("PEM block %d is not a valid certificate", n+1)
		}
		n++
	}
	if n == 0 || strings.TrimSpace(string(rest)) != "" {
		return errors.New("must be PEM-encoded certificates only")
	}
	return nil
}

// checkRSAKey accepts a PKCS#1 or PKCS#8 RSA private key. Its errors say
// nothing about the key's content.
func checkRSAKey(s string) error {
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		return errors.New("not PEM-encoded")
	}
	if _, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
		return nil
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return errors.New("not an RSA private key (PKCS#1 or PKCS#8)")
	}
	if _, ok := k.(*rsa.PrivateKey); !ok {
		return errors.New("PKCS#8 key is not RSA (applink signs with RSA-SHA1)")
	}
	return nil
}

// checkClientCredentials reports malformed service-account fields. Client
// ids and secrets are opaque strings that Atlassian hands out without
// spaces; one with a space or a line break is a copy-and-paste accident
// that would only surface later as invalid_client. The messages never
// quote the values.
func checkClientCredentials(a *Auth, bad func(field, reason string)) {
	if a.ClientID != "" && !printableToken(a.ClientID, 256) {
		bad("auth.client_id", "must be 1-256 printable characters without spaces")
	}
	if a.ClientSecret != "" && !printableToken(a.ClientSecret.Reveal(), 4096) {
		bad("auth.client_secret", "must be 1-4096 printable characters without spaces (check for a stray line break)")
	}
	for i, sc := range a.Scopes {
		if !printableToken(sc, 256) {
			bad(fmt.Sprintf("auth.scopes[%d]", i), "must be a non-empty scope name without spaces")
		}
	}
}

// printableToken: 1..max visible ASCII characters, no spaces.
func printableToken(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
