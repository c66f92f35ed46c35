package credstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestSecretNeverPrints(t *testing.T) {
	recs := sampleRecords(t)
	rec := recs[3] // applink: the most secret fields
	rec.Auth.RefreshToken = "SECRET-extra-refresh"

	var out strings.Builder
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%10s", "%d"} {
		fmt.Fprintf(&out, format+"\n", rec.Auth.Token, rec.Auth.AccessToken)
		fmt.Fprintf(&out, format+"\n", rec.Auth)
		fmt.Fprintf(&out, format+"\n", rec)
		fmt.Fprintf(&out, format+"\n", *rec)
	}
	fmt.Fprintln(&out, rec, rec.Auth, []Secret{rec.Auth.TokenSecret}, map[string]Secret{"k": rec.Auth.Password})
	if !strings.Contains(out.String(), "[REDACTED]") || !strings.Contains(out.String(), `credstore.Secret("[REDACTED]")`) {
		t.Errorf("fmt output does not show the placeholder:\n%s", out.String())
	}

	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	out.Write(b)
	if !strings.Contains(string(b), `"access_token":"[REDACTED]"`) {
		t.Errorf("json = %s", b)
	}
	txt, _ := rec.Auth.Password.MarshalText()
	out.Write(txt)

	// zap: reflection (zap.Any on structs), Stringer, and both encoders.
	var zbuf bytes.Buffer
	enc := zap.NewProductionEncoderConfig()
	core := zapcore.NewTee(
		zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(&zbuf), zapcore.DebugLevel),
		zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(&zbuf), zapcore.DebugLevel),
	)
	zl := zap.New(core)
	zl.Info("integration", zap.Any("auth", rec.Auth), zap.Any("record", rec),
		zap.Any("token", rec.Auth.Token), zap.Stringer("secret", rec.Auth.TokenSecret),
		zap.Reflect("reflect", rec))
	zl.Sugar().Infow("sugar", "auth", rec.Auth, "pem", rec.Auth.PrivateKeyPEM)
	zl.Sugar().Infof("printf %v %+v", rec, rec.Auth)
	if !strings.Contains(zbuf.String(), "[REDACTED]") {
		t.Errorf("zap output lacks the placeholder:\n%s", zbuf.String())
	}
	out.Write(zbuf.Bytes())

	// slog: LogValuer on Secret; the text handler formats structs with %+v.
	var sbuf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&sbuf, nil), slog.NewTextHandler(&sbuf, nil)} {
		slog.New(h).Info("integration", "auth", rec.Auth, "token", rec.Auth.AccessToken, "record", rec)
	}
	out.Write(sbuf.Bytes())

	assertNoSecrets(t, "formatted output", out.String(), rec)
	if t.Failed() {
		t.Log(out.String())
	}

	var s Secret
	if err := json.Unmarshal([]byte(`"hunter2"`), &s); err != nil || s.Reveal() != "hunter2" {
		t.Errorf("UnmarshalJSON = %q, %v", s.Reveal(), err)
	}
	if err := json.Unmarshal([]byte(`12345678`), &s); err == nil || strings.Contains(err.Error(), "12345678") {
		t.Errorf("UnmarshalJSON(number) error = %v", err)
	}
}

func TestValidate(t *testing.T) {
	valid := sampleRecords(t)
	for _, r := range valid {
		if err := r.Validate(); err != nil {
			t.Errorf("%s: %v", r.ID, err)
		}
	}
	cloud := func(f func(r *Record)) *Record { r := *valid[0]; f(&r); return &r }
	server := func(kind int, f func(r *Record)) *Record { r := *valid[kind]; f(&r); return &r }
	const pat, basic, applink = 1, 2, 3

	tests := []struct {
		name string
		rec  *Record
		want []string
	}{
		{"bad id", cloud(func(r *Record) { r.ID = "a b" }), []string{"id: must match"}},
		{"long id", cloud(func(r *Record) { r.ID = strings.Repeat("x", 129) }), []string{"id: must match"}},
		{"no flavor", cloud(func(r *Record) { r.Flavor = "" }), []string{"flavor: must be cloud or server"}},
		{"cloud without site", cloud(func(r *Record) { r.CloudID, r.SiteURL = "", "" }),
			[]string{"cloud_id: cloud_id or site_url is required"}},
		{"cloud site_url http", cloud(func(r *Record) { r.SiteURL = "http://acme.atlassian.net" }),
			[]string{"site_url: must be an absolute https URL"}},
		{"cloud_id with slash", cloud(func(r *Record) { r.CloudID = "../admin" }), []string{"cloud_id: must match"}},
		{"cloud pat", cloud(func(r *Record) { r.Auth = Auth{Kind: KindPAT, Token: "SECRET-x"} }),
			[]string{"auth.kind: must be oauth2 or oauth2_client for flavor cloud"}},
		{"oauth2 without token", cloud(func(r *Record) { r.Auth.AccessToken = "" }),
			[]string{"auth.access_token: required for kind oauth2"}},
		{"oauth2 with password", cloud(func(r *Record) { r.Auth.Password = "SECRET-stray" }),
			[]string{"auth.password: not used by kind oauth2"}},
		{"unknown kind", cloud(func(r *Record) { r.Auth.Kind = "saml" }),
			[]string{"auth.kind: must be oauth2, oauth2_client, pat, basic or applink"}},
		{"edit policy", cloud(func(r *Record) { r.EditPolicy = "merge" }), []string{"edit_policy: must be overwrite or keep"}},
		{"server without base", server(pat, func(r *Record) { r.BaseURL = "" }), []string{"base_url: required for flavor server"}},
		{"server relative base", server(pat, func(r *Record) { r.BaseURL = "wiki.example.com" }),
			[]string{"base_url: must be an absolute http(s) URL"}},
		{"server base with credentials", server(pat, func(r *Record) { r.BaseURL = "https://u:SECRET-inurl@wiki" }),
			[]string{"base_url: must be an absolute http(s) URL without credentials"}},
		{"server oauth2", server(pat, func(r *Record) { r.Auth = valid[0].Auth }),
			[]string{"auth.kind: must be pat, basic, applink or oauth2_client for flavor server"}},
		{"pat without token", server(pat, func(r *Record) { r.Auth.Token = "" }), []string{"auth.token: required for kind pat"}},
		{"basic without password", server(basic, func(r *Record) { r.Auth.Password = "" }),
			[]string{"auth.password: required for kind basic"}},
		{"basic without username", server(basic, func(r *Record) { r.Auth.Username = "" }),
			[]string{"auth.username: required for kind basic"}},
		{"applink bad key", server(applink, func(r *Record) { r.Auth.PrivateKeyPEM = "SECRET-not-a-pem" }),
			[]string{"auth.private_key_pem: not PEM-encoded"}},
		{"applink cert as key", server(applink, func(r *Record) { r.Auth.PrivateKeyPEM = Secret(valid[1].CAPEM) }),
			[]string{"auth.private_key_pem: not an RSA private key"}},
		{"applink missing all", server(applink, func(r *Record) { r.Auth = Auth{Kind: KindAppLink} }),
			[]string{"auth.consumer_key: required", "auth.private_key_pem: required", "auth.access_token: required"}},
		{"ca_pem garbage", server(pat, func(r *Record) { r.CAPEM = "not pem" }), []string{"ca_pem: must be PEM-encoded certificates"}},
		{"ca_pem key", server(pat, func(r *Record) { r.CAPEM = rsaPEM() }), []string{`ca_pem: PEM block 1 is "PRIVATE KEY"`}},
		{"several at once", &Record{ID: "x", Flavor: "server", Auth: Auth{Kind: "basic"}},
			[]string{"base_url: required", "auth.username: required", "auth.password: required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.rec.Validate()
			if err == nil {
				t.Fatal("Validate = nil")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error is not a *FieldError")
			}
			if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "BEGIN") {
				t.Errorf("error %q reveals a value", err)
			}
		})
	}
}

func TestDecodeRecord(t *testing.T) {
	good := `{"id":"dc-pat","flavor":"server","base_url":"https://wiki.example.com","auth":{"kind":"pat","token":"SECRET-pat"}}`
	rec, err := DecodeRecord(strings.NewReader(good))
	if err != nil || rec.Auth.Token.Reveal() != "SECRET-pat" {
		t.Fatalf("DecodeRecord = %+v, %v", rec, err)
	}
	for input, want := range map[string]string{
		strings.Replace(good, `"token"`, `"tokn"`, 1): `unknown field "tokn"`,
		good + ` {}`: "unexpected data after",
		strings.Replace(good, `"SECRET-pat"`, `12345`, 1): "must be a JSON string",
		strings.Replace(good, `"pat"`, `"basic"`, 1):      "auth.token: not used by kind basic",
		`{"id":`: "unexpected EOF",
	} {
		_, err := DecodeRecord(strings.NewReader(input))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("DecodeRecord(%s) = %v, want %q", input, err, want)
		}
		if err != nil && (strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "12345")) {
			t.Errorf("error %q reveals a value", err)
		}
	}
}

// An Application Link signs with RSA-SHA1, which never uses the token
// secret (RFC 5849 §3.4.3): a record without one is valid, and asking for
// every applink field does not ask for it.
func TestAppLinkTokenSecretOptional(t *testing.T) {
	rec := *sampleRecords(t)[3]
	rec.Auth.TokenSecret = ""
	if err := rec.Validate(); err != nil {
		t.Fatalf("applink without token_secret: %v", err)
	}
	err := (&Record{ID: "x", Flavor: FlavorServer, BaseURL: "https://wiki.example.com", Auth: Auth{Kind: KindAppLink}}).Validate()
	if err == nil || strings.Contains(err.Error(), "token_secret") {
		t.Errorf("empty applink record: %v (must not ask for token_secret)", err)
	}
}
