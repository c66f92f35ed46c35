package jobs

import (
	"context"
	"fmt"
	"net/http"

	"retropub/confluence"
	"retropub/credstore"
)

// NewConnector returns the Connector production and tests share: Cloud
// clients through the gateway at apiURL, all on one pooled *http.Client.
// opts are appended to every client's options (the gate, observers).
func NewConnector(apiURL string, hc *http.Client, opts ...confluence.Option) Connector {
	return func(_ context.Context, rec *credstore.Record) (Confluence, error) {
		if rec.Flavor != "cloud" {
			return nil, permanent(fmt.Errorf("integration %s: flavor %q is not supported by this worker version", rec.ID, rec.Flavor))
		}
		if rec.CloudID == "" {
			return nil, permanent(fmt.Errorf("integration %s: cloud_id is required (site_url look-up is not supported yet)", rec.ID))
		}
		return confluence.NewCloud(apiURL, rec.CloudID, append([]confluence.Option{
			confluence.WithHTTPClient(hc),
			confluence.WithAuthorizer(confluence.BearerToken(rec.Auth.AccessToken.Reveal())),
			confluence.WithUserAgent("retropub/1")}, opts...)...)
	}
}
