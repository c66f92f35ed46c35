package confluencetest

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
)

const testToken = "test-access-token"

type testBundle struct {
	srv     *Server
	base    string // {C}: base URL plus /ex/confluence/{cloudId}
	url     string
	spaceID string
	homeID  string
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	s := New(Options{})
	u := s.Start()
	t.Cleanup(s.Close)
	s.AddAccessToken(testToken)
	spaceID, homeID := s.AddSpace("TEAM", "Team")
	return &testBundle{srv: s, url: u, base: u + "/ex/confluence/" + s.CloudID(), spaceID: spaceID, homeID: homeID}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

// do sends a request with the test token; body may be nil, []byte or a value to marshal.
func (b *testBundle) do(t *testing.T, method, path string, body any, hdr ...string) response {
	t.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(v)
	default:
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	u := path
	if !strings.HasPrefix(path, "http") {
		u = b.base + path
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

// createReq and updateReq build the only page bodies the tests send; the
// spec test checks them against PageCreateRequest / PageUpdateRequest.
func createReq(spaceID, title, parentID, value string) map[string]any {
	m := map[string]any{
		"spaceId": spaceID, "status": "current", "title": title,
		"body": map[string]any{"representation": "storage", "value": value},
	}
	if parentID != "" {
		m["parentId"] = parentID
	}
	return m
}

func updateReq(id, title, parentID, value string, version int) map[string]any {
	m := map[string]any{
		"id": id, "status": "current", "title": title,
		"body":    map[string]any{"representation": "storage", "value": value},
		"version": map[string]any{"number": version, "message": "test"},
	}
	if parentID != "" {
		m["parentId"] = parentID
	}
	return m
}

func (b *testBundle) createPage(t *testing.T, title string) map[string]any {
	t.Helper()
	r := b.do(t, "POST", "/wiki/api/v2/pages", createReq(b.spaceID, title, "", "<p>x</p>"))
	if r.status != 200 {
		t.Fatalf("create %q: %d %s", title, r.status, r.body)
	}
	return r.json(t)
}

type filePart struct{ name, ctype, data string }

// multipartBody builds an upload form: file parts then comment parts.
func multipartBody(t *testing.T, files []filePart, comments ...string) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range files {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="file"; filename="`+f.name+`"`)
		h.Set("Content-Type", f.ctype)
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write([]byte(f.data))
	}
	for _, c := range comments {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="comment"`)
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write([]byte(c))
	}
	_ = mw.WriteField("minorEdit", "true")
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), mw.FormDataContentType()
}

func (b *testBundle) upload(t *testing.T, path string, files []filePart, comments ...string) response {
	t.Helper()
	body, ct := multipartBody(t, files, comments...)
	return b.do(t, "POST", path, body, "Content-Type", ct, "X-Atlassian-Token", "no-check")
}

func wantStatus(t *testing.T, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
}

func wantBody(t *testing.T, r response, want string) {
	t.Helper()
	var got, exp any
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatalf("body not JSON: %s", r.body)
	}
	if err := json.Unmarshal([]byte(want), &exp); err != nil {
		t.Fatalf("bad expectation: %v", err)
	}
	g, _ := json.Marshal(got)
	e, _ := json.Marshal(exp)
	if !bytes.Equal(g, e) {
		t.Fatalf("body\n got %s\nwant %s", g, e)
	}
}
