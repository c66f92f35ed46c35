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
func connectServer(rec *credstore.Record, hc *http.Client, opts ...confluence.Option) (Confluence, error) {
	auth, err := serverAuth(rec.Auth)
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

func serverAuth(a credstore.Auth) (confluence.Authorizer, error) {
	switch a.Kind {
	case credstore.KindPAT:
		return confluence.BearerToken(a.Token.Reveal()), nil
	case credstore.KindBasic:
		return confluence.Basic(a.Username, a.Password.Reveal()), nil
	case credstore.KindAppLink:
		return confluence.AppLink(a.ConsumerKey, a.PrivateKeyPEM.Reveal(), a.AccessToken.Reveal(), a.TokenSecret.Reveal())
	}
	return nil, fmt.Errorf("auth kind %q is not supported for flavor server", a.Kind)
}
