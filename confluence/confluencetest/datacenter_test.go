package confluencetest

import (
	"bufio"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

func setupDC(t *testing.T) (*DataCenter, *testBundle) {
	t.Helper()
	d := NewDataCenter(DataCenterOptions{ContextPath: "/confluence/"})
	base := d.Start()
	t.Cleanup(d.Close)
	d.AddPAT("tester", testToken)
	_, home := d.AddSpace("TEAM", "Team")
	return d, &testBundle{srv: d.Server, base: base, url: base, homeID: home}
}

// The example of RFC 5849 §3.4.1.1, byte for byte.
func TestDCSignatureBaseRFC5849(t *testing.T) {
	raw := "POST /request?b5=%3D%253D&a3=a&c%40=&a2=r%20b HTTP/1.1\r\n" +
		"Host: example.com\r\n" +
		"Content-Type: application/x-www-form-urlencoded\r\n" +
		`Authorization: OAuth realm="Example", oauth_consumer_key="9djdj82h48djs9d2", oauth_token="kkk9d7dh3k39sjv7", oauth_signature_method="HMAC-SHA1", oauth_timestamp="137131201", oauth_nonce="7d8f3e4a", oauth_signature="bYT5CMsGcbgUdFHObYMEfcx6bsw%3D"` + "\r\n" +
		"Content-Length: 9\r\n\r\nc2&a3=2+q"
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	params, err := parseOAuthHeader(r.Header.Get("Authorization"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := signatureBase(r, []byte("c2&a3=2+q"), params)
	if err != nil {
		t.Fatal(err)
	}
	want := "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q" +
		"%26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_" +
		"key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_m" +
		"ethod%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk" +
		"9d7dh3k39sjv7"
	if got != want {
		t.Fatalf("signature base\n got %s\nwant %s", got, want)
	}
}

// signed builds an RSA-SHA1 request to u by the RFC's rules, as an
// Application Link consumer would.
func signed(t *testing.T, key *rsa.PrivateKey, method, u, nonce string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	params := map[string]string{
		"oauth_consumer_key": "link", "oauth_token": "tok", "oauth_signature_method": "RSA-SHA1",
		"oauth_timestamp": strconv.FormatInt(time.Now().Unix(), 10), "oauth_nonce": nonce, "oauth_version": "1.0",
	}
	req.Host = req.URL.Host
	base, err := signatureBase(req, nil, params)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum([]byte(base))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA1, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	params["oauth_signature"] = base64.StdEncoding.EncodeToString(sig)
	var parts []string
	for k, v := range params {
		parts = append(parts, fmt.Sprintf(`%s="%s"`, percentEncode(k), percentEncode(v)))
	}
	req.Header.Set("Authorization", "OAuth "+strings.Join(parts, ", "))
	return req
}

func TestDCOAuthRSASHA1(t *testing.T) {
	d, b := setupDC(t)
	key, _ := rsa.GenerateKey(rand.Reader, 1024)
	other, _ := rsa.GenerateKey(rand.Reader, 1024)
	d.AddConsumer("link", &key.PublicKey)
	d.AddOAuthToken("link", "tok", "alice")
	u := b.base + "/rest/api/space?spaceKey=TEAM&expand=homepage"
	send := func(req *http.Request) *http.Response {
		t.Helper()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	good := signed(t, key, "GET", u, "n1")
	if resp := send(good); resp.StatusCode != 200 {
		t.Fatalf("good signature: %d %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	cases := map[string]struct {
		req  *http.Request
		want string
	}{
		"replayed":  {good, "nonce_used"},
		"other key": {signed(t, other, "GET", u, "n2"), "signature_invalid"},
	}
	tampered := signed(t, key, "GET", u, "n3")
	tampered.URL.RawQuery = "spaceKey=OTHER"
	cases["tampered query"] = struct {
		req  *http.Request
		want string
	}{tampered, "signature_invalid"}
	for name, c := range cases {
		resp := send(c.req)
		if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `oauth_problem="`+c.want+`"`) {
			t.Errorf("%s: %d %q, want 401 %s", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), c.want)
		}
	}
	if n := d.OAuthVerified(); n != 1 {
		t.Errorf("verified %d signatures, want 1", n)
	}
}

func TestDCCaptchaAfterFailedLogins(t *testing.T) {
	d, b := setupDC(t)
	d.AddUser("bob", "right")
	login := func(pass string) (int, string) {
		req, _ := http.NewRequest("GET", b.base+"/rest/api/user/current", nil)
		req.SetBasicAuth("bob", pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("X-Seraph-LoginReason")
	}
	for i := 0; i < 3; i++ {
		if code, reason := login("wrong"); code != 401 || reason != loginFailed {
			t.Fatalf("failed login %d: %d %s", i, code, reason)
		}
	}
	if code, reason := login("right"); code != 401 || reason != loginDenied || !d.Locked("bob") {
		t.Fatalf("after 3 failures: %d %s, want 401 %s", code, reason, loginDenied)
	}
	d.UnlockUser("bob")
	if code, _ := login("right"); code != 200 {
		t.Fatalf("after the CAPTCHA: %d", code)
	}
}

func TestDCContentV1(t *testing.T) {
	d, b := setupDC(t)
	outside := b.do(t, "GET", b.url[:strings.Index(b.url, "/confluence")]+"/rest/api/space", nil)
	wantStatus(t, outside, 404)

	create := func(title string, ancestors ...string) response {
		body := map[string]any{"type": "page", "title": title, "space": map[string]any{"key": "TEAM"},
			"body": map[string]any{"storage": map[string]any{"value": "<p>x</p>", "representation": "storage"}}}
		if len(ancestors) > 0 {
			body["ancestors"] = []any{map[string]any{"id": ancestors[0]}}
		}
		return b.do(t, "POST", b.base+"/rest/api/content", body)
	}
	top := create("Top level")
	wantStatus(t, top, 200)
	under := create("Under home", b.homeID).json(t)
	for _, p := range d.Pages("TEAM") {
		if p.Title == "Top level" && p.ParentID != "" || p.Title == "Under home" && p.ParentID != b.homeID {
			t.Errorf("page %q has parent %q", p.Title, p.ParentID)
		}
	}
	dup := create("under HOME", b.homeID)
	wantStatus(t, dup, 400)
	if m := dup.json(t); m["statusCode"] != float64(400) || !strings.Contains(m["message"].(string), "A page with this title already exists") {
		t.Errorf("duplicate title body %s", dup.body)
	}

	id := under["id"].(string)
	stale := b.do(t, "PUT", b.base+"/rest/api/content/"+id, map[string]any{
		"type": "page", "title": "Under home", "version": map[string]any{"number": 1}})
	wantStatus(t, stale, 409)
	wantBody(t, stale, `{"statusCode":409,"data":{"authorized":true,"valid":true,"errors":[],"successful":false},
		"message":"Version must be incremented on update. Current version is: 1","reason":"Conflict"}`)

	q := url.Values{"spaceKey": {"TEAM"}, "title": {"under home"}, "expand": {"ancestors"}}
	if m := b.do(t, "GET", b.base+"/rest/api/content?"+q.Encode(), nil).json(t); m["size"] != float64(0) {
		t.Errorf("title filter is case-sensitive; got %v", m["size"])
	}
	q.Set("title", "Under home")
	got := b.do(t, "GET", b.base+"/rest/api/content?"+q.Encode(), nil).json(t)
	anc := got["results"].([]any)[0].(map[string]any)["ancestors"].([]any)
	if len(anc) != 1 || anc[0].(map[string]any)["id"] != b.homeID || got["_links"].(map[string]any)["base"] != b.base {
		t.Errorf("look-up by title: %v", got)
	}
	search := b.do(t, "GET", b.base+"/rest/api/content/search?"+url.Values{"cql": {"id = " + id}, "expand": {"version"}}.Encode(), nil).json(t)
	if search["size"] != float64(1) {
		t.Errorf("search by id: %v", search)
	}

	b.do(t, "GET", b.base+"/rest/api/content/"+id, nil) // exists on Data Center, not in DESIGN §4
	if dis := d.Disallowed(); len(dis) != 2 || dis[1].Route != "GET /rest/api/content/{id}" {
		t.Errorf("disallowed = %+v, want the call outside the context path and GET /rest/api/content/{id}", dis)
	}
}
