package confluence

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/dghubble/oauth1"
)

// Data Center sign-ins (confluence-api.md §3.5). A personal access token
// is a BearerToken.

// Basic authorizes with a Data Center username and password. Its value
// prints nothing secret.
func Basic(username, password string) Authorizer { return basicAuth{username, password} }

type basicAuth struct{ user, password string }

func (b basicAuth) Authorize(_ context.Context, req *http.Request) error {
	req.SetBasicAuth(b.user, b.password)
	return nil
}

func (b basicAuth) String() string { return "basic auth for " + b.user }

// AppLink signs every request with OAuth 1.0a RSA-SHA1, as an incoming
// Application Link expects: the consumer key and the public key are
// configured on the link, the access token was granted by the user.
// privateKeyPEM is PKCS#1 or PKCS#8. Errors never quote the key.
func AppLink(consumerKey, privateKeyPEM, accessToken, tokenSecret string) (Authorizer, error) {
	key, err := parseRSAKey(privateKeyPEM)
	if err != nil {
		return nil, err
	}
	cfg := &oauth1.Config{ConsumerKey: consumerKey, Signer: &oauth1.RSASigner{PrivateKey: key}}
	// dghubble/oauth1 signs inside a RoundTripper. Its transport is given a
	// base that only catches the signed request, so signing fits the
	// client's one request path (gate, observer, allowlist) instead of
	// replacing its transport.
	ctx := context.WithValue(context.Background(), oauth1.HTTPClient, &http.Client{Transport: catchSigned{}})
	signer := cfg.Client(ctx, oauth1.NewToken(accessToken, tokenSecret)).Transport
	return &appLink{signer: signer}, nil
}

type appLink struct{ signer http.RoundTripper }

func (a *appLink) String() string { return "application link (OAuth 1.0a RSA-SHA1)" }

// Authorize signs req. The signature covers method, URL and query; bodies
// are JSON or multipart, which OAuth 1.0a leaves out of the signature.
func (a *appLink) Authorize(ctx context.Context, req *http.Request) error {
	if strings.HasPrefix(req.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return errors.New("confluence: application link signing does not cover form bodies")
	}
	probe := req.Clone(ctx)
	probe.Body, probe.GetBody = nil, nil
	resp, err := a.signer.RoundTrip(probe)
	if err != nil {
		return fmt.Errorf("confluence: sign request: %w", err)
	}
	resp.Body.Close()
	req.Header.Set("Authorization", resp.Request.Header.Get("Authorization"))
	return nil
}

// catchSigned answers without sending: the request it gets is the signed one.
type catchSigned struct{}

func (catchSigned) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusNoContent, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("")), Request: req}, nil
}

func parseRSAKey(s string) (*rsa.PrivateKey, error) {
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		return nil, errors.New("confluence: application link private key is not PEM-encoded")
	}
	if k, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, errors.New("confluence: application link private key is not an RSA key (PKCS#1 or PKCS#8)")
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("confluence: application link private key is not RSA")
	}
	return rk, nil
}
