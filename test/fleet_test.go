package test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"time"

	"retropub/confluence/confluencetest"
	"retropub/credstore"
)

// fleet is several customer sites behind one fake gateway, one
// integration per site ("cust-00", "cust-01", …), as production serves
// many customers through api.atlassian.com.
type fleet struct {
	sites []*confluencetest.Server
	url   string
}

func (e *env) newFleet(n int) *fleet {
	e.t.Helper()
	f := &fleet{}
	for i := range n {
		s := confluencetest.New(confluencetest.Options{CloudID: fmt.Sprintf("00000000-0000-0000-0000-%012d", i)})
		s.AddSpace("ENG", "Engineering")
		s.AddAccessToken(e.token)
		f.sites = append(f.sites, s)
		err := e.store.Put(context.Background(), &credstore.Record{
			ID: f.integration(i), Flavor: "cloud", CloudID: s.CloudID(),
			Auth: credstore.Auth{Kind: "oauth2", AccessToken: credstore.Secret(e.token), ExpiresAt: time.Now().Add(time.Hour)},
		})
		if err != nil {
			e.t.Fatal(err)
		}
	}
	ts := httptest.NewServer(confluencetest.Router(f.sites...))
	e.t.Cleanup(ts.Close)
	e.t.Cleanup(func() {
		for i, s := range f.sites {
			if d := s.Disallowed(); len(d) > 0 {
				e.t.Errorf("site %d saw calls outside DESIGN §4: %+v", i, d)
			}
		}
	})
	f.url = ts.URL
	return f
}

func (f *fleet) integration(i int) string { return fmt.Sprintf("cust-%02d", i) }

// env is the worker environment pointing at the fleet's gateway.
func (f *fleet) env(extra ...string) []string {
	return append([]string{"ATLASSIAN_API_URL=" + f.url}, extra...)
}

// pagesTitled counts site i's pages with that title.
func (f *fleet) pagesTitled(i int, title string) int {
	n := 0
	for _, p := range f.sites[i].Pages("ENG") {
		if p.Title == title {
			n++
		}
	}
	return n
}

// onePageEach fails unless site i has exactly one page per report.
func (e *env) onePageEach(f *fleet, i int, prefix string, n int) {
	e.t.Helper()
	for k := range n {
		if c := f.pagesTitled(i, fmt.Sprintf("Retro %s-%d", prefix, k)); c != 1 {
			e.t.Fatalf("site %d: %d pages for report %s-%d", i, c, prefix, k)
		}
	}
}
