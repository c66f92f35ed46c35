package confluence

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// dcSpaces answers GET /confluence/rest/api/space as Data Center does:
// start/limit offsets, a _links.next relative to the context path while
// more remain, and numeric space ids.
func dcSpaces(t *testing.T, n, capLimit int) (*Client, *[]string) {
	t.Helper()
	var calls []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls = append(calls, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
		if r.URL.Path != "/confluence/rest/api/space" || r.URL.Query().Get("status") != "current" {
			w.WriteHeader(404)
			return
		}
		start, _ := strconv.Atoi(r.URL.Query().Get("start"))
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		limit = min(limit, capLimit)
		var res []string
		for i := start; i < min(start+limit, n); i++ {
			res = append(res, fmt.Sprintf(`{"id":%d,"key":"S%d","name":"Space %d","type":"global"}`, 1000+i, i, i))
		}
		next := ""
		if start+limit < n {
			next = fmt.Sprintf(`,"next":"/rest/api/space?limit=%d&start=%d"`, limit, start+limit)
		}
		fmt.Fprintf(w, `{"results":[%s],"start":%d,"limit":%d,"size":%d,"_links":{"base":"http://x/confluence"%s}}`,
			strings.Join(res, ","), start, limit, len(res), next)
	}))
	t.Cleanup(srv.Close)
	c, err := NewServer(srv.URL+"/confluence", WithAuthorizer(BearerToken("t")), loopback())
	if err != nil {
		t.Fatal(err)
	}
	return c, &calls
}

// integration:check on Data Center lists spaces with GET /rest/api/space,
// paging by start/limit up to the cap (issue 14 item 1).
func TestDataCenterListSpaces(t *testing.T) {
	cases := []struct {
		n, capLimit, max int
		want             int
		more             bool
	}{
		{5, 100, 10, 5, false},
		{5, 100, 3, 3, true},
		{5, 2, 10, 5, false}, // the server caps limit silently: follow its offsets
		{7, 2, 4, 4, true},
		{0, 100, 10, 0, false},
	}
	for _, tc := range cases {
		c, calls := dcSpaces(t, tc.n, tc.capLimit)
		spaces, more, err := c.ListSpaces(context.Background(), tc.max)
		if err != nil || len(spaces) != tc.want || more != tc.more {
			t.Errorf("%+v: %d spaces, more %v, err %v; calls %v", tc, len(spaces), more, err, *calls)
			continue
		}
		for i, s := range spaces {
			if s.Key != fmt.Sprintf("S%d", i) || s.ID != s.Key {
				t.Errorf("%+v: space %d is %+v (v1 addresses spaces by key)", tc, i, s)
			}
		}
	}
}

// Data Center answers a created page with a relative /display/… link and
// no _links.base: the client makes it absolute with the base URL, context
// path included (issue 14 item 6). Cloud uses the answer's base, else the
// site URL it was given.
func TestPageURLsAreAbsolute(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/wiki/api/v2/") {
			fmt.Fprint(w, `{"id":"42","status":"current","title":"T","_links":{"webui":"/spaces/ENG/pages/42/T"}}`)
			return
		}
		fmt.Fprint(w, `{"id":"42","type":"page","status":"current","title":"T","_links":{"webui":"/display/ENG/T"}}`)
	}))
	defer srv.Close()
	dc, err := NewServer(srv.URL+"/confluence/", WithAuthorizer(BearerToken("t")), loopback())
	if err != nil {
		t.Fatal(err)
	}
	pg, err := dc.CreatePage(context.Background(), NewPage{SpaceID: "ENG", ParentID: "7", Title: "T", Body: "b"})
	if err != nil || pg.URL() != srv.URL+"/confluence/display/ENG/T" {
		t.Fatalf("Data Center page URL %q (%v)", pg.URL(), err)
	}
	cl, err := NewCloud(srv.URL, "c", WithAuthorizer(BearerToken("t")), WithSiteURL("https://acme.atlassian.net/"), loopback())
	if err != nil {
		t.Fatal(err)
	}
	pg, err = cl.CreatePage(context.Background(), NewPage{SpaceID: "1", Title: "T", Body: "b"})
	if err != nil || pg.URL() != "https://acme.atlassian.net/wiki/spaces/ENG/pages/42/T" {
		t.Fatalf("Cloud page URL %q (%v)", pg.URL(), err)
	}
}
