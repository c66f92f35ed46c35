// Package credstore keeps integration records in Redis with their secrets
// sealed by AES-256-GCM, so Redis never holds a plaintext credential.
package credstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"retropub/internal/rediskeys"
)

// Redis layout (DESIGN §3, internal/rediskeys): one JSON document per
// integration, tagged with its id, plus a fleet-wide index set of ids so
// List and Rotate need no SCAN. No transaction spans the two (they sit in
// different slots on a cluster): the index is written before a record and
// cleared after one, and readers skip an id without a record.
const indexKey = rediskeys.Integrations

func recordKey(id string) string { return rediskeys.Record(id) }

// ErrNotFound is returned (wrapped) for an id with no record.
var ErrNotFound = errors.New("credstore: integration not found")

// Store reads and writes integration records. It is safe for concurrent use
// by many goroutines and processes.
type Store struct {
	rdb    redis.UniversalClient
	keys   *Keyring
	now    func() time.Time
	legacy *rediskeys.Fallback
}

// New returns a Store over rdb, sealing with keys.
func New(rdb redis.UniversalClient, keys *Keyring) *Store {
	return &Store{rdb: rdb, keys: keys, now: time.Now}
}

// UseFallback makes the store adopt records still under their pre-tag
// names (a deployment that `worker migrate` has not renamed yet).
func (s *Store) UseFallback(f *rediskeys.Fallback) { s.legacy = f }

// document is what Redis holds: the public fields in clear, the secrets in
// Sealed.
type document struct {
	ID         string     `json:"id"`
	Flavor     string     `json:"flavor"`
	CloudID    string     `json:"cloud_id,omitempty"`
	SiteURL    string     `json:"site_url,omitempty"`
	BaseURL    string     `json:"base_url,omitempty"`
	CAPEM      string     `json:"ca_pem,omitempty"`
	EditPolicy string     `json:"edit_policy,omitempty"`
	Auth       publicAuth `json:"auth"`
	Status     Status     `json:"status,omitzero"`
	UpdatedAt  time.Time  `json:"updated_at,omitzero"`
	Sealed     sealed     `json:"sealed"`
}

type publicAuth struct {
	Kind        string    `json:"kind"`
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
	Scopes      []string  `json:"scopes,omitempty"`
	Username    string    `json:"username,omitempty"`
	ConsumerKey string    `json:"consumer_key,omitempty"`
	ClientID    string    `json:"client_id,omitempty"`
	// HasRefreshToken lets List build a View without opening the seal.
	HasRefreshToken bool `json:"has_refresh_token,omitempty"`
	// RefreshedAt is when the access token was obtained by a refresh.
	RefreshedAt time.Time `json:"refreshed_at,omitzero"`
}

// secretFields is the sealed plaintext. Plain strings, because Secret
// refuses to marshal its value.
type secretFields struct {
	AccessToken   string `json:"access_token,omitempty"`
	RefreshToken  string `json:"refresh_token,omitempty"`
	Token         string `json:"token,omitempty"`
	Password      string `json:"password,omitempty"`
	PrivateKeyPEM string `json:"private_key_pem,omitempty"`
	TokenSecret   string `json:"token_secret,omitempty"`
	ClientSecret  string `json:"client_secret,omitempty"`
}

// associatedData binds the ciphertext to the integration id and to the
// fields that decide where the secrets are sent and how they are used.
// A blob copied to another record fails to open, and so does a record whose
// base_url (or site, CA, kind) was changed in Redis to redirect credentials.
//
// Version 2 (adCurrent) also binds what decides behaviour: edit_policy,
// scopes, status, token expiry (issue 13). Records sealed with version 1
// still open with the version-1 data, and are sealed with version 2 by
// their next write or `worker keys rotate`. A version-2 record relabelled
// as version 1 does not open: its ciphertext is bound to the version-2 data.
func associatedData(d *document, version int) []byte {
	fields := []any{"retropub/credstore/v1", d.ID, d.Flavor, d.CloudID, d.SiteURL,
		d.BaseURL, d.CAPEM, d.Auth.Kind, d.Auth.Username, d.Auth.ConsumerKey}
	if version >= adBehaviour {
		fields[0] = "retropub/credstore/v2"
		fields = append(fields, d.Auth.ClientID, editPolicy(d.EditPolicy), d.Auth.Scopes,
			d.Status, d.Auth.ExpiresAt.UTC(), d.Auth.HasRefreshToken)
	} else if d.Auth.Kind == KindClientCredentials {
		// Only this kind has a client id; records of the others keep the
		// associated data they were sealed with.
		fields = append(fields, d.Auth.ClientID)
	}
	b, _ := json.Marshal(fields)
	return b
}

// Associated-data versions: adLegacy (0, no "ad" in the record: version 1),
// adBehaviour (2). adCurrent seals.
const (
	adLegacy    = 0
	adBehaviour = 2
	adCurrent   = adBehaviour
)

func (s *Store) seal(r *Record) (*document, error) {
	a := &r.Auth
	d := &document{
		ID: r.ID, Flavor: r.Flavor, CloudID: r.CloudID, SiteURL: r.SiteURL, BaseURL: r.BaseURL,
		CAPEM: r.CAPEM, EditPolicy: r.EditPolicy, Status: r.Status, UpdatedAt: r.UpdatedAt,
		Auth: publicAuth{Kind: a.Kind, ExpiresAt: a.ExpiresAt, Scopes: a.Scopes, Username: a.Username,
			ConsumerKey: a.ConsumerKey, ClientID: a.ClientID, HasRefreshToken: a.RefreshToken != "", RefreshedAt: a.RefreshedAt},
	}
	pt, err := json.Marshal(secretFields{
		AccessToken: a.AccessToken.Reveal(), RefreshToken: a.RefreshToken.Reveal(), Token: a.Token.Reveal(),
		Password: a.Password.Reveal(), PrivateKeyPEM: a.PrivateKeyPEM.Reveal(), TokenSecret: a.TokenSecret.Reveal(),
		ClientSecret: a.ClientSecret.Reveal(),
	})
	if err != nil {
		return nil, err
	}
	d.Sealed = s.keys.seal(pt, associatedData(d, adCurrent))
	d.Sealed.AD = adCurrent
	return d, nil
}

// unseal opens d, which was stored under id. The AD is rebuilt with the
// id from the key, not from the document, so copying a whole document to
// another key does not help either.
func (s *Store) unseal(id string, d *document) (*Record, error) {
	stored := *d
	stored.ID = id
	pt, err := s.keys.open(id, d.Sealed, associatedData(&stored, d.Sealed.AD))
	if err != nil {
		return nil, err
	}
	var sec secretFields
	if err := json.Unmarshal(pt, &sec); err != nil {
		return nil, fmt.Errorf("credstore: integration %q: sealed secrets are malformed", id)
	}
	r := d.record()
	r.ID = id
	r.Auth.AccessToken, r.Auth.RefreshToken = Secret(sec.AccessToken), Secret(sec.RefreshToken)
	r.Auth.Token, r.Auth.Password = Secret(sec.Token), Secret(sec.Password)
	r.Auth.PrivateKeyPEM, r.Auth.TokenSecret = Secret(sec.PrivateKeyPEM), Secret(sec.TokenSecret)
	r.Auth.ClientSecret = Secret(sec.ClientSecret)
	return r, nil
}

// record returns the public fields as a Record, without secrets.
func (d *document) record() *Record {
	return &Record{
		ID: d.ID, Flavor: d.Flavor, CloudID: d.CloudID, SiteURL: d.SiteURL, BaseURL: d.BaseURL,
		CAPEM: d.CAPEM, EditPolicy: d.EditPolicy, Status: d.Status, UpdatedAt: d.UpdatedAt,
		Auth: Auth{Kind: d.Auth.Kind, ExpiresAt: d.Auth.ExpiresAt, Scopes: d.Auth.Scopes,
			Username: d.Auth.Username, ConsumerKey: d.Auth.ConsumerKey, ClientID: d.Auth.ClientID, RefreshedAt: d.Auth.RefreshedAt},
	}
}

func decodeDocument(id string, b []byte) (*document, error) {
	var d document
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("credstore: integration %q: stored record is not valid JSON", id)
	}
	return &d, nil
}

// Put validates rec and stores it, replacing any record with the same id.
// New credentials clear the status (a needs_reauth is resolved by them), so
// Put sets rec.UpdatedAt and resets rec.Status.
func (s *Store) Put(ctx context.Context, rec *Record) error {
	if err := rec.Validate(); err != nil {
		return err
	}
	rec.UpdatedAt = s.now().UTC()
	rec.Status = Status{}
	d, err := s.seal(rec)
	if err != nil {
		return err
	}
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	if err := s.legacy.Adopt(ctx, recordKey(rec.ID)); err != nil {
		return fmt.Errorf("credstore: put %q: %w", rec.ID, err)
	}
	var existed *redis.IntCmd
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		existed = p.Exists(ctx, indexKey)
		p.SAdd(ctx, indexKey, rec.ID)
		p.Set(ctx, recordKey(rec.ID), b, 0)
		return nil
	})
	if err != nil {
		return fmt.Errorf("credstore: put %q: %w", rec.ID, err)
	}
	if existed.Val() == 0 {
		// The first record of a new deployment: nothing of the legacy
		// layout can exist, so no worker needs to look for it.
		return rediskeys.MarkTagged(ctx, s.rdb)
	}
	return nil
}

// Get returns the record with its secrets opened. Errors: ErrNotFound
// (wrapped), *UnknownKeyError, ErrCannotDecrypt (wrapped).
func (s *Store) Get(ctx context.Context, id string) (*Record, error) {
	if !IDPattern.MatchString(id) {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id) // Put never stores such an id
	}
	if err := s.legacy.Adopt(ctx, recordKey(id)); err != nil {
		return nil, fmt.Errorf("credstore: get %q: %w", id, err)
	}
	return s.read(id, s.rdb.Get(ctx, recordKey(id)))
}

// GetAlong is Get with the caller's own commands (along) queued in the
// same pipeline: one round trip instead of two on the publish path, which
// reads the record and the space cache back to back. along runs only when
// the record is read from Redis, and its commands are pipelined, not
// transactional: each answers as if sent alone.
func (s *Store) GetAlong(ctx context.Context, id string, along func(redis.Pipeliner)) (*Record, error) {
	if !IDPattern.MatchString(id) {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id) // Put never stores such an id
	}
	if err := s.legacy.Adopt(ctx, recordKey(id)); err != nil {
		return nil, fmt.Errorf("credstore: get %q: %w", id, err)
	}
	var get *redis.StringCmd
	// Each command keeps its own answer (and error); Exec's first error
	// is get's or along's, read from the commands below.
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, recordKey(id))
		along(p)
		return nil
	})
	return s.read(id, get)
}

// read turns the answer to GET of id's record into the record.
func (s *Store) read(id string, get *redis.StringCmd) (*Record, error) {
	b, err := get.Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("credstore: get %q: %w", id, err)
	}
	d, err := decodeDocument(id, b)
	if err != nil {
		return nil, err
	}
	return s.unseal(id, d)
}

// List returns a View of every record, sorted by id. It reads only the
// public fields, so it works even when a record's key is missing.
func (s *Store) List(ctx context.Context) ([]View, error) {
	ids, err := s.rdb.SMembers(ctx, indexKey).Result()
	if err != nil {
		return nil, fmt.Errorf("credstore: list: %w", err)
	}
	slices.Sort(ids)
	if err := s.adoptAll(ctx, ids); err != nil {
		return nil, fmt.Errorf("credstore: list: %w", err)
	}
	cmds := make([]*redis.StringCmd, len(ids))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.Get(ctx, recordKey(id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("credstore: list: %w", err)
	}
	views := make([]View, 0, len(ids))
	for i, id := range ids {
		b, err := cmds[i].Bytes()
		if errors.Is(err, redis.Nil) {
			continue // deleted between SMEMBERS and GET
		}
		if err != nil {
			return nil, fmt.Errorf("credstore: list: %w", err)
		}
		d, err := decodeDocument(id, b)
		if err != nil {
			return nil, err
		}
		v := d.record().View()
		v.ID, v.HasRefreshToken = id, d.Auth.HasRefreshToken
		views = append(views, v)
	}
	return views, nil
}

// Delete removes a record; ErrNotFound (wrapped) if there was none.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := s.legacy.Adopt(ctx, recordKey(id)); err != nil {
		return fmt.Errorf("credstore: delete %q: %w", id, err)
	}
	var del *redis.IntCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		del = p.Del(ctx, recordKey(id))
		p.SRem(ctx, indexKey, id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("credstore: delete %q: %w", id, err)
	}
	if del.Val() == 0 {
		return fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return nil
}

// SetStatus replaces the status of a record, leaving its sealed secrets as
// they are (it needs no key). A needs_reauth status without Since gets now.
func (s *Store) SetStatus(ctx context.Context, id string, st Status) error {
	if st.NeedsReauth && st.Since.IsZero() {
		st.Since = s.now().UTC()
	}
	// The status is bound to the seal: it is written by re-sealing.
	return s.update(ctx, id, func(d *document) (bool, error) {
		r, err := s.unseal(id, d)
		if err != nil {
			return false, err
		}
		r.Status = st
		nd, err := s.seal(r)
		if err != nil {
			return false, err
		}
		*d = *nd
		return true, nil
	})
}

// Rotate re-seals with the primary key every record sealed under another
// one or with older associated data, and returns how many it re-sealed. It carries on past a record it
// cannot open and reports all such failures together.
func (s *Store) Rotate(ctx context.Context) (int, error) {
	ids, err := s.rdb.SMembers(ctx, indexKey).Result()
	if err != nil {
		return 0, fmt.Errorf("credstore: rotate: %w", err)
	}
	slices.Sort(ids)
	n := 0
	var errs []error
	for _, id := range ids {
		resealed := false // per attempt: update may retry fn
		err := s.update(ctx, id, func(d *document) (bool, error) {
			resealed = false
			if d.Sealed.KID == s.keys.PrimaryID() && d.Sealed.AD == adCurrent {
				return false, nil
			}
			r, err := s.unseal(id, d)
			if err != nil {
				return false, err
			}
			nd, err := s.seal(r)
			if err != nil {
				return false, err
			}
			d.Sealed, resealed = nd.Sealed, true
			return true, nil
		})
		switch {
		case err == nil && resealed:
			n++
		case err != nil && !errors.Is(err, ErrNotFound):
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

// update applies fn to the stored document under WATCH, so a concurrent Put
// (say, a token refresh saving its new pair) is never overwritten with
// stale secrets. fn returns false to leave the record unchanged.
func (s *Store) update(ctx context.Context, id string, fn func(*document) (bool, error)) error {
	key := recordKey(id)
	if err := s.legacy.Adopt(ctx, key); err != nil {
		return fmt.Errorf("credstore: update %q: %w", id, err)
	}
	for range 20 {
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			b, err := tx.Get(ctx, key).Bytes()
			if errors.Is(err, redis.Nil) {
				return fmt.Errorf("%w: %q", ErrNotFound, id)
			}
			if err != nil {
				return fmt.Errorf("credstore: get %q: %w", id, err)
			}
			d, err := decodeDocument(id, b)
			if err != nil {
				return err
			}
			write, err := fn(d)
			if err != nil || !write {
				return err
			}
			nb, err := json.Marshal(d)
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, nb, 0)
				return nil
			})
			if err != nil && !errors.Is(err, redis.TxFailedErr) {
				return fmt.Errorf("credstore: update %q: %w", id, err)
			}
			return err
		}, key)
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
	}
	return fmt.Errorf("credstore: integration %q: changed concurrently too often, gave up", id)
}

// adoptAll adopts the legacy records of ids, in one round trip.
func (s *Store) adoptAll(ctx context.Context, ids []string) error {
	if !s.legacy.Active(ctx) {
		return nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = recordKey(id)
	}
	return s.legacy.Adopt(ctx, keys...)
}
