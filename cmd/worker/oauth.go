package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"retropub/credstore"
	"retropub/jobs"
)

// oauthFlags are the flags of `integrations oauth-url` and `oauth-exchange`.
type oauthFlags struct {
	redirect, scopes           string
	code, id, siteURL, cloudID string
}

func (o *oauthFlags) register(fs *flag.FlagSet, cmd string) {
	fs.StringVar(&o.redirect, "redirect-uri", "", "the OAuth app's callback URL (as registered in the developer console)")
	if cmd == "oauth-url" {
		fs.StringVar(&o.scopes, "scopes", strings.Join(jobs.RequestedScopes(), " "), "space-separated scopes to ask for")
		return
	}
	fs.StringVar(&o.code, "code", "", "the code the callback received")
	fs.StringVar(&o.id, "id", "", "integration id to store the tokens under")
	fs.StringVar(&o.siteURL, "site-url", "", "the Confluence site (https://NAME.atlassian.net); needed when the login reaches several sites")
	fs.StringVar(&o.cloudID, "cloud-id", "", "the site's cloud id, instead of --site-url")
}

// oauthURL prints the consent URL an admin opens, with its state value,
// which the callback must get back unchanged.
func oauthURL(d integrationsDeps, o oauthFlags, stdout, stderr io.Writer) int {
	if o.redirect == "" {
		fmt.Fprintln(stderr, "integrations oauth-url: --redirect-uri is required")
		return 2
	}
	if d.oauth.ClientID == "" {
		fmt.Fprintln(stderr, "integrations oauth-url: ATLASSIAN_CLIENT_ID is not set")
		return 2
	}
	scopes := strings.Fields(o.scopes)
	if !containsString(scopes, "offline_access") {
		scopes = append(scopes, "offline_access") // no refresh token without it
	}
	state := credstore.NewState()
	json.NewEncoder(stdout).Encode(map[string]any{"url": d.oauth.AuthCodeURL(o.redirect, state, scopes), "state": state, "scopes": scopes})
	return 0
}

// oauthExchange trades the callback's code for tokens and stores them as
// the integration's record.
func oauthExchange(ctx context.Context, d integrationsDeps, o oauthFlags, stdout, stderr io.Writer) int {
	if o.code == "" || o.redirect == "" || o.id == "" {
		fmt.Fprintln(stderr, "integrations oauth-exchange: --code, --redirect-uri and --id are required")
		return 2
	}
	auth, err := d.oauth.Exchange(ctx, o.code, o.redirect)
	if err != nil {
		fmt.Fprintf(stderr, "integrations oauth-exchange: %v\n", err)
		return 1
	}
	rec := &credstore.Record{ID: o.id, Flavor: credstore.FlavorCloud, SiteURL: o.siteURL, CloudID: o.cloudID, Auth: auth}
	if rec.SiteURL == "" && rec.CloudID == "" {
		// Only one site reachable: that is the one just authorised.
		rs, err := d.oauth.AccessibleResources(ctx, auth.AccessToken)
		if err != nil {
			fmt.Fprintf(stderr, "integrations oauth-exchange: %v\n", err)
			return 1
		}
		if len(rs) != 1 {
			fmt.Fprintf(stderr, "integrations oauth-exchange: the login reaches %d sites; name one with --site-url\n", len(rs))
			return 2
		}
		rec.CloudID, rec.SiteURL = rs[0].ID, rs[0].URL
	}
	if err := rec.Validate(); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "integrations oauth-exchange: %s\n", line)
		}
		return 2
	}
	return putAndRerun(ctx, d, rec, "oauth-exchange", stdout, stderr)
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
