package confluence

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// loopback lets the tests reach httptest servers past the egress policy.
func loopback() Option {
	_, v4, _ := net.ParseCIDR("127.0.0.0/8")
	return WithHTTPClient(NewHTTPClient(5*time.Second, 4, AllowCIDRs(v4)))
}

func testClient(t *testing.T, h http.HandlerFunc) (*Client, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := NewCloud(srv.URL, "cloud-1", WithAuthorizer(BearerToken("t")), loopback())
	if err != nil {
		t.Fatal(err)
	}
	return c, &hits
}

func TestAllowlistRefusesBeforeNetwork(t *testing.T) {
	c, hits := testClient(t, func(w http.ResponseWriter, r *http.Request) {})
	for _, r := range []request{
		{method: "GET", path: "/wiki/rest/api/content"},       // retired v1
		{method: "GET", path: "/wiki/api/v2/pages/123"},       // read through the list instead
		{method: "DELETE", path: "/wiki/api/v2/spaces"},       // never
		{method: "PUT", path: "/wiki/api/v2/pages/../spaces"}, // traversal
		{method: "POST", path: "/wiki/rest/api/content/x/child/attachment"},
	} {
		err := c.do(context.Background(), r, nil)
		var na *NotAllowedError
		if !errors.As(err, &na) || !errors.Is(err, ErrNotAllowed) {
			t.Errorf("%s %s: %v, want NotAllowedError", r.method, r.path, err)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("%d requests reached the network", hits.Load())
	}
}

func TestErrorMapping(t *testing.T) {
	cases := []struct {
		status int
		header map[string]string
		body   string
		is     []error
	}{
		{404, nil, `{"errors":[{"status":404,"code":"NOT_FOUND","title":"Not Found"}]}`, []error{ErrNotFound}},
		{409, nil, `{"errors":[{"status":409,"code":"CONFLICT","title":"Version must be incremented"}]}`, []error{ErrVersionConflict}},
		{400, nil, `{"errors":[{"status":400,"code":"BAD_REQUEST","title":"A page with this title already exists: A page already exists with the same TITLE in this space"}]}`, []error{ErrTitleExists, ErrBadRequest}},
		{400, nil, `{"statusCode":400,"message":"com.atlassian.confluence.api.service.exceptions.BadRequestException: Cannot add a new attachment with same file name as an existing attachment: a.png"}`, []error{ErrFileExists, ErrBadRequest}},
		{401, nil, `{"code":401,"message":"Unauthorized"}`, []error{ErrUnauthorized}},
		{403, nil, `{"statusCode":403,"message":"XSRF check failed"}`, []error{ErrForbidden}},
		{410, nil, `{"statusCode":410,"message":"GoneException"}`, []error{ErrGone}},
		{413, nil, `{"statusCode":413,"message":"Request too large"}`, []error{ErrTooLarge}},
		{429, map[string]string{"Retry-After": "3"}, ``, []error{ErrRateLimited}},
		{503, map[string]string{"Retry-After": "2"}, ``, []error{ErrRateLimited, ErrServer}},
		{502, nil, `<html>bad gateway</html>`, []error{ErrServer}},
	}
	for _, tc := range cases {
		c, _ := testClient(t, func(w http.ResponseWriter, r *http.Request) {
			for k, v := range tc.header {
				w.Header().Set(k, v)
			}
			w.WriteHeader(tc.status)
			w.Write([]byte(tc.body))
		})
		_, err := c.SpaceByKey(context.Background(), "ENG")
		for _, want := range tc.is {
			if !errors.Is(err, want) {
				t.Errorf("%d: %v is not %v", tc.status, err, want)
			}
		}
		if tc.status == 429 {
			var rl *RateLimitError
			if !errors.As(err, &rl) || rl.RetryAfter != 3*time.Second {
				t.Errorf("429: %#v", err)
			}
		}
	}
}

func TestTransportErrorAndTokenNotInErrors(t *testing.T) {
	c, err := NewCloud("http://127.0.0.1:1", "cloud-1", WithAuthorizer(BearerToken("sekrit-token")), loopback())
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.PageByTitle(context.Background(), "1", "Secret Title?", false)
	if !errors.Is(err, ErrTransport) {
		t.Fatalf("%v, want transport error", err)
	}
	if strings.Contains(err.Error(), "sekrit") || strings.Contains(err.Error(), "Secret Title") {
		t.Fatalf("error leaks request details: %v", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	cases := map[string]time.Duration{
		"3":                             3 * time.Second,
		"9223372036854775807":           MaxRetryAfter,
		"Tue, 01 Dec 2026 12:00:30 GMT": 30 * time.Second,
		"Tue, 01 Dec 2026 11:00:00 GMT": 0,
	}
	for in, want := range cases {
		got, ok := ParseRetryAfter(in, now)
		if !ok || got != want {
			t.Errorf("%q: %v %v, want %v", in, got, ok, want)
		}
	}
	if _, ok := ParseRetryAfter("soon", now); ok {
		t.Error("garbage parsed")
	}
}

// A 401 with refreshable credentials refreshes once and repeats once.
type countingRefresher struct{ token, refreshes atomic.Int64 }

func (r *countingRefresher) Authorize(_ context.Context, req *http.Request) error {
	if r.token.Load() > 0 {
		req.Header.Set("Authorization", "Bearer fresh")
	} else {
		req.Header.Set("Authorization", "Bearer stale")
	}
	return nil
}
func (r *countingRefresher) Refresh(context.Context) error {
	r.refreshes.Add(1)
	r.token.Store(1)
	return nil
}

func TestUnauthorizedRefreshesOnce(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Header.Get("Authorization") != "Bearer fresh" {
			w.WriteHeader(401)
			return
		}
		w.Write([]byte(`{"results":[{"id":"7","key":"ENG"}]}`))
	}))
	defer srv.Close()
	rf := &countingRefresher{}
	c, _ := NewCloud(srv.URL, "c", WithAuthorizer(rf), loopback())
	sp, err := c.SpaceByKey(context.Background(), "ENG")
	if err != nil || sp.ID != "7" || rf.refreshes.Load() != 1 || hits.Load() != 2 {
		t.Fatalf("space %+v err %v refreshes %d hits %d", sp, err, rf.refreshes.Load(), hits.Load())
	}
}

func TestAttachmentAnswerShapes(t *testing.T) {
	for _, body := range []string{`{"results":[{"id":"att9","title":"a.png"}],"size":1}`, `{"id":"att9","title":"a.png"}`} {
		got, err := decodeAttachments([]byte(body))
		if err != nil || len(got) != 1 || got[0].ID != "att9" {
			t.Errorf("%s: %+v %v", body, got, err)
		}
	}
}

type failingSource struct{ sent bool }

func (f *failingSource) Read(p []byte) (int, error) {
	if !f.sent {
		f.sent = true
		return copy(p, "partial"), nil
	}
	return 0, errors.New("file server went away")
}
func (f *failingSource) Close() error { return nil }

// A source failing mid-upload is the source's error, not Confluence's: it
// must not look like a transport error (which trips breakers).
func TestUploadSourceFailureIsNotATransportError(t *testing.T) {
	c, _ := testClient(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) })
	_, err := c.AddAttachments(context.Background(), "1", []Upload{{Filename: "a.pdf",
		Open: func() (io.ReadCloser, error) { return &failingSource{}, nil }}})
	var se *SourceError
	if !errors.As(err, &se) || errors.Is(err, ErrTransport) || se.Filename != "a.pdf" {
		t.Fatalf("%v (%T), want a SourceError for a.pdf", err, err)
	}
}

// An upload is not cut off by the per-request timeout (a large file takes
// longer); it is bounded by the caller's context.
func TestUploadOutlivesRequestTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(300 * time.Millisecond)
		w.Write([]byte(`{"results":[{"id":"att1","title":"a.pdf"}]}`))
	}))
	defer srv.Close()
	_, lo, _ := net.ParseCIDR("127.0.0.0/8")
	c, _ := NewCloud(srv.URL, "c", WithAuthorizer(BearerToken("t")),
		WithHTTPClient(NewHTTPClient(100*time.Millisecond, 2, AllowCIDRs(lo))))
	if _, err := c.AddAttachments(context.Background(), "1", []Upload{BytesUpload("a.pdf", "application/pdf", "", []byte("x"))}); err != nil {
		t.Fatalf("upload cut off: %v", err)
	}
	if _, err := c.SpaceByKey(context.Background(), "ENG"); !errors.Is(err, ErrTransport) {
		t.Fatalf("a plain request should still time out: %v", err)
	}
}
