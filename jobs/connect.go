package jobs

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"retropub/confluence"
	"retropub/credstore"
)

// CloudCredentials gives each Cloud client its OAuth token source, shared
// with the fleet through the credential store (credstore.Tokens).
type CloudCredentials interface {
	Source(rec *credstore.Record) *credstore.TokenSource
	ResolveSite(ctx context.Context, rec *credstore.Record, src *credstore.TokenSource) error
}

// NewConnector returns the Connector production and tests share: Cloud
// clients through the gateway at apiURL, Server/Data Center clients at each
// integration's base_url, all on one pooled *http.Client (its egress policy
// included). creds refresh OAuth tokens and find the cloud id of records
// that only name their site; nil uses each stored access token as it is.
// opts (an observer for metrics, a gate) apply to every client, after the
// defaults.
func NewConnector(apiURL string, hc *http.Client, creds CloudCredentials, opts ...confluence.Option) Connector {
	cc := connectConfig{cloud: creds, opts: opts}
	return func(ctx context.Context, rec *credstore.Record) (Confluence, error) {
		if rec.Flavor == credstore.FlavorServer {
			return connectServer(rec, hc, creds, opts...)
		}
		if rec.Flavor != "cloud" {
			return nil, permanent(fmt.Errorf("integration %s: flavor %q is not supported by this worker version", rec.ID, rec.Flavor))
		}
		return cc.connectCloud(ctx, apiURL, hc, rec)
	}
}

type connectConfig struct {
	cloud CloudCredentials
	opts  []confluence.Option
}

func (cc connectConfig) connectCloud(ctx context.Context, apiURL string, hc *http.Client, rec *credstore.Record) (Confluence, error) {
	var auth confluence.Authorizer = confluence.BearerToken(rec.Auth.AccessToken.Reveal())
	if cc.cloud != nil {
		src := cc.cloud.Source(rec)
		if err := cc.cloud.ResolveSite(ctx, rec, src); err != nil {
			var se *credstore.SiteError
			if errors.As(err, &se) {
				return nil, permanent(err)
			}
			return nil, err
		}
		auth = src
	}
	if rec.CloudID == "" {
		return nil, permanent(fmt.Errorf("integration %s: cloud_id is required", rec.ID))
	}
	if err := checkScopes(rec.ID, rec.Auth.Scopes); err != nil {
		return nil, err
	}
	return confluence.NewCloud(apiURL, rec.CloudID, append([]confluence.Option{
		confluence.WithHTTPClient(hc),
		confluence.WithAuthorizer(auth),
		confluence.WithSiteURL(rec.SiteURL),
		confluence.WithUserAgent("retropub/1")}, cc.opts...)...)
}
