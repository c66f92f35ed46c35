package credstore

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"retropub/internal/rediskeys"
)

var testNow = time.Date(2026, 11, 27, 15, 0, 0, 0, time.UTC)

// Two fixed keys, so failures are reproducible.
var (
	key1 = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	key2 = base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
)

func mustKeys(t *testing.T, raw string) *Keyring {
	t.Helper()
	k, err := ParseKeys(raw)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newTestStore(t *testing.T, keys string) (*Store, *miniredis.Miniredis, redis.UniversalClient) {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	s := New(rdb, mustKeys(t, keys))
	s.now = func() time.Time { return testNow }
	return s, mr, rdb
}

// rsaPEM is generated once: RSA key generation is slow under -race.
var rsaPEM = sync.OnceValue(func() string {
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		panic(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
})

func caPEM(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: testNow, NotAfter: testNow.Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// sampleRecords returns one valid record per auth kind, each with
// distinctive secrets that the leak tests search for.
func sampleRecords(t *testing.T) []*Record {
	t.Helper()
	return []*Record{
		{ID: "acme-cloud", Flavor: FlavorCloud, CloudID: "11111111-2222-3333-4444-555555555555",
			SiteURL: "https://acme.atlassian.net", EditPolicy: EditKeep,
			Auth: Auth{Kind: KindOAuth2, AccessToken: "SECRET-oauth-access", RefreshToken: "SECRET-oauth-refresh",
				ExpiresAt: testNow.Add(time.Hour), Scopes: []string{"write:confluence-content", "offline_access"}}},
		{ID: "dc-pat", Flavor: FlavorServer, BaseURL: "https://wiki.example.com/confluence", CAPEM: caPEM(t),
			Auth: Auth{Kind: KindPAT, Token: "SECRET-pat-token"}},
		{ID: "dc-basic", Flavor: FlavorServer, BaseURL: "http://wiki.internal:8090",
			Auth: Auth{Kind: KindBasic, Username: "svc-retro", Password: "SECRET-basic-password"}},
		{ID: "dc.applink_1", Flavor: FlavorServer, BaseURL: "https://wiki.example.org",
			Auth: Auth{Kind: KindAppLink, ConsumerKey: "retropub-consumer", PrivateKeyPEM: Secret(rsaPEM()),
				AccessToken: "SECRET-applink-token", TokenSecret: "SECRET-applink-token-secret"}},
	}
}

func secretsOf(r *Record) []string {
	var out []string
	for _, s := range []Secret{r.Auth.AccessToken, r.Auth.RefreshToken, r.Auth.Token, r.Auth.Password,
		r.Auth.PrivateKeyPEM, r.Auth.TokenSecret} {
		if s != "" {
			out = append(out, s.Reveal())
			if s != r.Auth.PrivateKeyPEM {
				out = append(out, base64.StdEncoding.EncodeToString([]byte(s)))
			}
		}
	}
	if r.Auth.PrivateKeyPEM != "" {
		// The PEM's base64 body, a line at a time, so a re-wrapped copy is caught too.
		for _, line := range strings.Split(r.Auth.PrivateKeyPEM.Reveal(), "\n") {
			if len(line) > 40 {
				out = append(out, line)
			}
		}
	}
	return out
}

func assertNoSecrets(t *testing.T, where, got string, recs ...*Record) {
	t.Helper()
	for _, r := range recs {
		for _, s := range secretsOf(r) {
			if strings.Contains(got, s) {
				t.Errorf("%s contains a secret of %s (%.12q…)", where, r.ID, s)
			}
		}
	}
}

func TestRoundTripAllKinds(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newTestStore(t, "k1:"+key1)
	for _, rec := range sampleRecords(t) {
		t.Run(rec.Auth.Kind, func(t *testing.T) {
			want := *rec
			if err := s.Put(ctx, rec); err != nil {
				t.Fatal(err)
			}
			want.UpdatedAt = testNow
			got, err := s.Get(ctx, rec.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, &want) {
				t.Errorf("round trip:\n got %#v\nwant %#v", got.View(), want.View())
				for _, f := range [][2]Secret{{got.Auth.AccessToken, want.Auth.AccessToken},
					{got.Auth.RefreshToken, want.Auth.RefreshToken}, {got.Auth.Token, want.Auth.Token},
					{got.Auth.Password, want.Auth.Password}, {got.Auth.PrivateKeyPEM, want.Auth.PrivateKeyPEM},
					{got.Auth.TokenSecret, want.Auth.TokenSecret}} {
					if f[0] != f[1] {
						t.Error("a secret differs after the round trip")
					}
				}
			}
		})
	}
}

func TestPutClearsStatusSetStatusKeepsSecrets(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newTestStore(t, "k1:"+key1)
	rec := sampleRecords(t)[0]
	if err := s.Put(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := s.SetStatus(ctx, rec.ID, Status{NeedsReauth: true, Reason: "invalid_grant"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Status{NeedsReauth: true, Reason: "invalid_grant", Since: testNow}); got.Status != want {
		t.Errorf("status = %+v, want %+v", got.Status, want)
	}
	if got.Auth.RefreshToken != rec.Auth.RefreshToken || got.Auth.AccessToken != rec.Auth.AccessToken {
		t.Error("SetStatus changed the secrets")
	}
	if err := s.Put(ctx, got); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.Get(ctx, rec.ID); got.Status != (Status{}) {
		t.Errorf("status after Put = %+v, want cleared", got.Status)
	}
	if err := s.SetStatus(ctx, "nope", Status{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetStatus(missing) = %v, want ErrNotFound", err)
	}
}

func TestRedisHoldsNoSecrets(t *testing.T) {
	ctx := context.Background()
	s, _, rdb := newTestStore(t, "k1:"+key1+",k2:"+key2)
	recs := sampleRecords(t)
	for _, rec := range recs {
		if err := s.Put(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != len(recs)+2 {
		t.Errorf("keys = %q, want one per record plus the index and the layout marker", keys)
	}
	var dump strings.Builder
	for _, k := range keys {
		dump.WriteString(k + "\n")
		switch typ := rdb.Type(ctx, k).Val(); typ {
		case "string":
			dump.WriteString(rdb.Get(ctx, k).Val() + "\n")
		case "set":
			dump.WriteString(strings.Join(rdb.SMembers(ctx, k).Val(), "\n") + "\n")
		default:
			t.Errorf("unexpected key %s of type %s", k, typ)
		}
	}
	assertNoSecrets(t, "Redis", dump.String(), recs...)
	for _, k := range []string{key1, key2} {
		if strings.Contains(dump.String(), k) {
			t.Error("Redis contains a credstore key")
		}
	}
	// The public part is what DESIGN §3 promises, readable without keys.
	var d map[string]any
	if err := json.Unmarshal([]byte(rdb.Get(ctx, rediskeys.Record("acme-cloud")).Val()), &d); err != nil {
		t.Fatal(err)
	}
	if d["flavor"] != "cloud" || d["sealed"].(map[string]any)["kid"] != "k1" {
		t.Errorf("stored document = %v", d)
	}
}

func TestAssociatedDataBinding(t *testing.T) {
	ctx := context.Background()
	s, mr, _ := newTestStore(t, "k1:"+key1)
	recs := sampleRecords(t)
	a, b := recs[1], recs[2] // both server records
	for _, r := range []*Record{a, b} {
		if err := s.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	raw := func(id string) map[string]json.RawMessage {
		var m map[string]json.RawMessage
		v, _ := mr.Get(recordKey(id))
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	store := func(id string, m map[string]json.RawMessage) {
		v, _ := json.Marshal(m)
		mr.Set(recordKey(id), string(v))
	}
	orig := raw(b.ID)

	tests := []struct {
		name   string
		mutate func(m map[string]json.RawMessage)
	}{
		{"sealed blob copied from another id", func(m map[string]json.RawMessage) { m["sealed"] = raw(a.ID)["sealed"] }},
		{"whole document copied", func(m map[string]json.RawMessage) {
			for k, v := range raw(a.ID) {
				m[k] = v
			}
		}},
		{"base_url redirected", func(m map[string]json.RawMessage) { m["base_url"] = json.RawMessage(`"https://evil.example"`) }},
		// Fields that decide behaviour (issue 13 item 10).
		{"edit_policy flipped", func(m map[string]json.RawMessage) { m["edit_policy"] = json.RawMessage(`"keep"`) }},
		{"status set", func(m map[string]json.RawMessage) {
			m["status"] = json.RawMessage(`{"needs_reauth":true,"reason":"x"}`)
		}},
		{"scopes widened", func(m map[string]json.RawMessage) {
			var a map[string]any
			json.Unmarshal(m["auth"], &a)
			a["scopes"] = []string{"write:page:confluence", "delete:page:confluence"}
			m["auth"], _ = json.Marshal(a)
		}},
		{"relabelled as sealed before versions", func(m map[string]json.RawMessage) {
			var sl map[string]any
			json.Unmarshal(m["sealed"], &sl)
			delete(sl, "ad")
			m["sealed"], _ = json.Marshal(sl)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := raw(b.ID)
			tt.mutate(m)
			store(b.ID, m)
			t.Cleanup(func() { store(b.ID, orig) })
			_, err := s.Get(ctx, b.ID)
			if !errors.Is(err, ErrCannotDecrypt) {
				t.Fatalf("Get = %v, want ErrCannotDecrypt", err)
			}
			for _, want := range []string{`"dc-basic"`, `"k1"`, "wrong key or tampered"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %s", err, want)
				}
			}
		})
	}
	if _, err := s.Get(ctx, b.ID); err != nil {
		t.Errorf("restored record: %v", err)
	}
}

func TestWrongKeyAndUnknownKid(t *testing.T) {
	ctx := context.Background()
	s, _, rdb := newTestStore(t, "k1:"+key1)
	rec := sampleRecords(t)[0]
	if err := s.Put(ctx, rec); err != nil {
		t.Fatal(err)
	}

	wrong := New(rdb, mustKeys(t, "k1:"+key2)) // same id, different key
	_, err := wrong.Get(ctx, rec.ID)
	if !errors.Is(err, ErrCannotDecrypt) {
		t.Errorf("wrong key: Get = %v, want ErrCannotDecrypt", err)
	}

	unknown := New(rdb, mustKeys(t, "k2:"+key2))
	_, err = unknown.Get(ctx, rec.ID)
	var uk *UnknownKeyError
	if !errors.As(err, &uk) || uk.KeyID != "k1" || !strings.Contains(err.Error(), `"k1"`) {
		t.Errorf("unknown kid: Get = %v, want *UnknownKeyError naming k1", err)
	}
	for _, e := range []error{err} {
		assertNoSecrets(t, "error", e.Error(), rec)
	}
}

func TestRotate(t *testing.T) {
	ctx := context.Background()
	s, mr, rdb := newTestStore(t, "k1:"+key1)
	recs := sampleRecords(t)
	for _, rec := range recs {
		if err := s.Put(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	kidOf := func(id string) string {
		var d document
		v, _ := mr.Get(recordKey(id))
		json.Unmarshal([]byte(v), &d)
		return d.Sealed.KID
	}

	both := New(rdb, mustKeys(t, "k2:"+key2+",k1:"+key1))
	if _, err := both.Get(ctx, recs[0].ID); err != nil {
		t.Fatalf("k1 record with k2,k1: %v", err)
	}
	n, err := both.Rotate(ctx)
	if err != nil || n != len(recs) {
		t.Fatalf("Rotate = %d, %v; want %d, nil", n, err, len(recs))
	}
	if n, err := both.Rotate(ctx); err != nil || n != 0 {
		t.Errorf("second Rotate = %d, %v; want 0, nil", n, err)
	}

	only2 := New(rdb, mustKeys(t, "k2:"+key2))
	for _, rec := range recs {
		if k := kidOf(rec.ID); k != "k2" {
			t.Errorf("%s sealed under %q after rotation, want k2", rec.ID, k)
		}
		got, err := only2.Get(ctx, rec.ID)
		if err != nil {
			t.Fatalf("after rotation, k2 alone: %v", err)
		}
		if got.Auth.AccessToken != rec.Auth.AccessToken || got.Auth.Token != rec.Auth.Token {
			t.Errorf("%s: secrets changed by rotation", rec.ID)
		}
	}

	// A record sealed under a key that is gone is reported, the rest rotated.
	if err := New(rdb, mustKeys(t, "k3:"+key1)).Put(ctx, sampleRecords(t)[2]); err != nil {
		t.Fatal(err)
	}
	n, err = New(rdb, mustKeys(t, "k1:"+key1+",k2:"+key2)).Rotate(ctx)
	var uk *UnknownKeyError
	if n != len(recs)-1 || !errors.As(err, &uk) || uk.KeyID != "k3" {
		t.Errorf("Rotate with a lost key = %d, %v; want %d and *UnknownKeyError k3", n, err, len(recs)-1)
	}
}

func TestListDeleteNotFound(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newTestStore(t, "k1:"+key1)
	if views, err := s.List(ctx); err != nil || len(views) != 0 {
		t.Fatalf("empty List = %v, %v", views, err)
	}
	recs := sampleRecords(t)
	for i := len(recs) - 1; i >= 0; i-- {
		if err := s.Put(ctx, recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	views, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, v := range views {
		ids = append(ids, v.ID)
	}
	if want := []string{"acme-cloud", "dc-basic", "dc-pat", "dc.applink_1"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("List ids = %q, want %q", ids, want)
	}
	want := recs[0].View()
	if !reflect.DeepEqual(views[0], want) || !views[0].HasRefreshToken || views[0].EditPolicy != "keep" {
		t.Errorf("List view = %+v, want %+v", views[0], want)
	}
	if views[1].EditPolicy != "overwrite" {
		t.Errorf("default edit policy shows as %q", views[1].EditPolicy)
	}
	b, _ := json.Marshal(views)
	assertNoSecrets(t, "List JSON", string(b), recs...)

	if err := s.Delete(ctx, "dc-pat"); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		s.Delete(ctx, "dc-pat"),
		func() error { _, err := s.Get(ctx, "dc-pat"); return err }(),
		func() error { _, err := s.Get(ctx, "bad id/with:junk"); return err }(),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("got %v, want ErrNotFound", err)
		}
	}
	if views, _ := s.List(ctx); len(views) != 3 {
		t.Errorf("List after Delete has %d views, want 3", len(views))
	}
}

func TestParseKeys(t *testing.T) {
	k := mustKeys(t, " k2:"+key2+" , k1:"+strings.TrimRight(key1, "=")+",")
	if k.PrimaryID() != "k2" || len(k.aeads) != 2 {
		t.Errorf("primary = %q, %d keys", k.PrimaryID(), len(k.aeads))
	}
	short := base64.StdEncoding.EncodeToString([]byte("too short"))
	for raw, want := range map[string]string{
		"":                           "CREDSTORE_KEYS is empty",
		" , ":                        "CREDSTORE_KEYS is empty",
		"k1:" + short:                `key "k1": decodes to 9 bytes, want 32`,
		"k1:" + key1 + ",k1:" + key2: `key "k1" appears twice`,
		"kx:!!notbase64!!":           `key "kx": not valid base64`,
		key1:                         "entry 1: want kid:base64key",
		"bad kid:" + key1:            "entry 1",
	} {
		_, err := ParseKeys(raw)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseKeys(…) = %v, want error containing %q", err, want)
			continue
		}
		for _, secret := range []string{key1, key2, short, "notbase64"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("ParseKeys error %q reveals key material", err)
			}
		}
	}
	kid, enc := GenerateKey()
	if k, err := ParseKeys(kid + ":" + enc); err != nil || k.PrimaryID() != kid {
		t.Errorf("generated key: %v", err)
	}
}

// A record sealed before the associated data bound edit_policy, scopes and
// status (no "ad" in its seal) still opens; `worker keys rotate` (Rotate)
// seals it again with the current data, after which an edit breaks it.
func TestLegacyAssociatedDataOpensAndRotates(t *testing.T) {
	ctx := context.Background()
	s, mr, _ := newTestStore(t, "k1:"+key1)
	rec := sampleRecords(t)[0]
	if err := s.Put(ctx, rec); err != nil {
		t.Fatal(err)
	}
	// Re-seal it as the previous version did.
	var d document
	v, _ := mr.Get(recordKey(rec.ID))
	if err := json.Unmarshal([]byte(v), &d); err != nil {
		t.Fatal(err)
	}
	pt, err := s.keys.open(rec.ID, d.Sealed, associatedData(&d, adCurrent))
	if err != nil {
		t.Fatal(err)
	}
	d.Sealed = s.keys.seal(pt, associatedData(&d, adLegacy))
	legacy, _ := json.Marshal(&d)
	if strings.Contains(string(legacy), `"ad":`) {
		t.Fatalf("legacy record carries an ad version: %s", legacy)
	}
	mr.Set(recordKey(rec.ID), string(legacy))
	got, err := s.Get(ctx, rec.ID)
	if err != nil || got.Auth.RefreshToken != rec.Auth.RefreshToken {
		t.Fatalf("legacy record: %v", err)
	}
	n, err := s.Rotate(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Rotate = %d, %v; want the legacy record re-sealed", n, err)
	}
	v, _ = mr.Get(recordKey(rec.ID))
	if !strings.Contains(v, `"ad":2`) {
		t.Fatalf("after Rotate: %s", v)
	}
	mr.Set(recordKey(rec.ID), strings.Replace(v, `"edit_policy":"keep"`, `"edit_policy":"overwrite"`, 1))
	if _, err := s.Get(ctx, rec.ID); !errors.Is(err, ErrCannotDecrypt) {
		t.Fatalf("edit_policy edited after the migration: Get = %v, want ErrCannotDecrypt", err)
	}
}

// SetStatus re-seals, so a status the store wrote opens.
func TestSetStatusKeepsTheSeal(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newTestStore(t, "k1:"+key1)
	rec := sampleRecords(t)[0]
	if err := s.Put(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := s.SetStatus(ctx, rec.ID, Status{NeedsReauth: true, Reason: "invalid_grant"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, rec.ID)
	if err != nil || !got.Status.NeedsReauth || got.Status.Reason != "invalid_grant" {
		t.Fatalf("Get = %+v, %v", got, err)
	}
}
