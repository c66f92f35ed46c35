package credstore

import (
	"context"
	"errors"
	"fmt"
)

// ErrCredentialsReplaced means the record's refresh token is no longer the
// one a refresh used: new credentials were put meanwhile, and they win.
var ErrCredentialsReplaced = errors.New("credstore: the integration's credentials were replaced meanwhile")

// modify opens the stored record, applies fn and seals it again, under the
// same WATCH as update, so a concurrent writer is never overwritten with
// stale secrets.
func (s *Store) modify(ctx context.Context, id string, fn func(*Record) error) error {
	return s.update(ctx, id, func(d *document) (bool, error) {
		r, err := s.unseal(id, d)
		if err != nil {
			return false, err
		}
		if err := fn(r); err != nil {
			return false, err
		}
		r.UpdatedAt = s.now().UTC()
		nd, err := s.seal(r)
		if err != nil {
			return false, err
		}
		*d = *nd
		return true, nil
	})
}

// SaveTokens stores the pair a refresh of usedRefresh returned, keeping the
// record's other fields and its status. It refuses with
// ErrCredentialsReplaced (wrapped) when the record no longer holds
// usedRefresh.
func (s *Store) SaveTokens(ctx context.Context, id string, usedRefresh Secret, a Auth) error {
	return s.modify(ctx, id, func(r *Record) error {
		if r.Auth.Kind != KindOAuth2 || r.Auth.RefreshToken != usedRefresh {
			return fmt.Errorf("%w: %q", ErrCredentialsReplaced, id)
		}
		r.Auth.AccessToken, r.Auth.ExpiresAt, r.Auth.RefreshedAt = a.AccessToken, a.ExpiresAt, a.RefreshedAt
		if a.RefreshToken != "" {
			r.Auth.RefreshToken = a.RefreshToken
		}
		if len(a.Scopes) > 0 {
			r.Auth.Scopes = a.Scopes
		}
		return nil
	})
}

// SaveClientToken caches the access token a service account's client
// credentials (usedSecret) fetched. It refuses with ErrCredentialsReplaced
// (wrapped) when the record no longer holds that secret: new credentials
// were put meanwhile, and their first use fetches their own token.
func (s *Store) SaveClientToken(ctx context.Context, id string, usedSecret Secret, a Auth) error {
	return s.modify(ctx, id, func(r *Record) error {
		if r.Auth.Kind != KindClientCredentials || r.Auth.ClientSecret != usedSecret {
			return fmt.Errorf("%w: %q", ErrCredentialsReplaced, id)
		}
		r.Auth.AccessToken, r.Auth.ExpiresAt, r.Auth.RefreshedAt = a.AccessToken, a.ExpiresAt, a.RefreshedAt
		return nil
	})
}

// SetSite records the cloud id found for a record's site_url and, when the
// record names none, the scopes granted there. The cloud id is bound into
// the seal's associated data, so the secrets are sealed again.
func (s *Store) SetSite(ctx context.Context, id, cloudID string, scopes []string) error {
	return s.modify(ctx, id, func(r *Record) error {
		r.CloudID = cloudID
		if len(r.Auth.Scopes) == 0 {
			r.Auth.Scopes = scopes
		}
		return r.Validate()
	})
}
