package credstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Resource is one site an OAuth login reaches (confluence-api.md §3.2).
type Resource struct {
	ID     string   `json:"id"` // the cloudId
	Name   string   `json:"name"`
	URL    string   `json:"url"`
	Scopes []string `json:"scopes"`
}

// SiteError is a site_url that cannot be turned into one cloud id: no
// reachable site has that URL, or several do. No retry fixes it.
type SiteError struct {
	Integration, SiteURL, Reason string
}

func (e *SiteError) Error() string {
	return fmt.Sprintf("credstore: integration %q: site_url %s: %s", e.Integration, e.SiteURL, e.Reason)
}

// StatusError is a non-2xx answer from accessible-resources.
type StatusError struct{ StatusCode int }

func (e *StatusError) Error() string {
	return fmt.Sprintf("credstore: accessible-resources answered %d", e.StatusCode)
}

// AccessibleResources lists the sites the access token reaches. It is the
// one call on the API host outside /ex/confluence, so it does not go
// through confluence.Client.
func (c OAuthConfig) AccessibleResources(ctx context.Context, access Secret) ([]Resource, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.APIURL, "/")+"/oauth/token/accessible-resources", nil)
	if err != nil {
		return nil, fmt.Errorf("credstore: accessible-resources: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+access.Reveal())
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpClient().Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("credstore: accessible-resources: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil, &StatusError{StatusCode: resp.StatusCode}
	}
	var rs []Resource
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&rs); err != nil {
		return nil, fmt.Errorf("credstore: accessible-resources: decode: %w", err)
	}
	return rs, nil
}

// MatchSite picks the resource whose url is siteURL (scheme and host,
// case-insensitive, trailing slash ignored). The order of the list means
// nothing, so several matches are an error, not a choice.
func MatchSite(rs []Resource, id, siteURL string) (Resource, error) {
	want := normalSite(siteURL)
	var found []Resource
	var seen []string
	for _, r := range rs {
		seen = append(seen, r.URL)
		if normalSite(r.URL) == want {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return Resource{}, &SiteError{Integration: id, SiteURL: siteURL,
			Reason: fmt.Sprintf("not among the sites this login reaches (%s); authorise the app on that site", strings.Join(seen, ", "))}
	}
	return Resource{}, &SiteError{Integration: id, SiteURL: siteURL, Reason: fmt.Sprintf("matches %d sites; set cloud_id", len(found))}
}

func normalSite(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return strings.ToLower(strings.TrimRight(raw, "/"))
	}
	return strings.ToLower(u.Scheme + "://" + u.Host)
}

// ResolveSite fills rec.CloudID from rec.SiteURL when the record has no
// cloud id, and caches it (with the site's granted scopes, when the record
// names none) in the store. A 401 refreshes the token once.
func (t *Tokens) ResolveSite(ctx context.Context, rec *Record, src *TokenSource) error {
	if rec.CloudID != "" {
		return nil
	}
	rs, err := t.resources(ctx, rec.ID, src)
	if err != nil {
		return err
	}
	r, err := MatchSite(rs, rec.ID, rec.SiteURL)
	if err != nil {
		return err
	}
	if err := t.store.SetSite(ctx, rec.ID, r.ID, r.Scopes); err != nil {
		return err
	}
	rec.CloudID = r.ID
	if len(rec.Auth.Scopes) == 0 {
		rec.Auth.Scopes = r.Scopes
	}
	return nil
}

func (t *Tokens) resources(ctx context.Context, id string, src *TokenSource) ([]Resource, error) {
	for attempt := 0; ; attempt++ {
		tok, err := src.Token(ctx)
		if err != nil {
			return nil, err
		}
		rs, err := t.cfg.AccessibleResources(ctx, tok)
		var se *StatusError
		if !errors.As(err, &se) || se.StatusCode != http.StatusUnauthorized {
			return rs, err
		}
		if attempt > 0 {
			return nil, src.markReauth(ctx, "accessible-resources refused a refreshed access token (401)")
		}
		if err := src.Refresh(ctx); err != nil {
			return nil, err
		}
	}
}
