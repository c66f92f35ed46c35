package jobs

import (
	"fmt"
	"net/http"

	"retropub/confluence"
	"retropub/credstore"
)

// connectServer builds the client of a Server/Data Center integration: its
// base_url (context path kept), its sign-in, and its ca_pem on a transport
// derived from hc, so the egress policy applies and connections still pool.
// Every failure here is the record's, so it is permanent.
// creds serve service accounts (kind oauth2_client); nil refuses them.
func connectServer(rec *credstore.Record, hc *http.Client, creds CloudCredentials, opts ...confluence.Option) (Confluence, error) {
	auth, err := serverAuth(rec, hc, creds)
	if err != nil {
		return nil, permanent(fmt.Errorf("integration %s: %w", rec.ID, err))
	}
	c, err := confluence.NewServer(rec.BaseURL, append([]confluence.Option{
		confluence.WithHTTPClient(hc),
		confluence.WithAuthorizer(auth),
		confluence.WithCA(rec.CAPEM),
		confluence.WithUserAgent("retropub/1")}, opts...)...)
	if err != nil {
		return nil, permanent(fmt.Errorf("integration %s: %w", rec.ID, err))
	}
	return c, nil
}

func serverAuth(rec *credstore.Record, hc *http.Client, creds CloudCredentials) (confluence.Authorizer, error) {
	a := rec.Auth
	switch a.Kind {
	case credstore.KindPAT:
		return confluence.BearerToken(a.Token.Reveal()), nil
	case credstore.KindBasic:
		return confluence.Basic(a.Username, a.Password.Reveal()), nil
	case credstore.KindAppLink:
		return confluence.AppLink(a.ConsumerKey, a.PrivateKeyPEM.Reveal(), a.AccessToken.Reveal(), a.TokenSecret.Reveal())
	case credstore.KindClientCredentials:
		return serviceAccount(rec, hc, creds)
	}
	return nil, fmt.Errorf("auth kind %q is not supported for flavor server", a.Kind)
}

// serviceAccount is a Data Center service account's token source: its
// tokens come from {base_url}/rest/oauth2/latest/token, reached through
// the integration's own client (egress policy and ca_pem), and the fleet
// shares each fetch through the credential store (DESIGN §11).
func serviceAccount(rec *credstore.Record, hc *http.Client, creds CloudCredentials) (confluence.Authorizer, error) {
	if creds == nil {
		return nil, fmt.Errorf("auth kind %s needs the credential store's token sources", rec.Auth.Kind)
	}
	tokenHC, err := confluence.HTTPClientWithCA(hc, rec.CAPEM)
	if err != nil {
		return nil, err
	}
	return creds.Source(rec).WithHTTPClient(tokenHC), nil
}
