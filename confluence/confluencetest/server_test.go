package confluencetest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestUnauthenticated(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, auth := range []string{"", "Bearer wrong", "Basic dXNlcjpwdw=="} {
		r := b.do(t, "GET", "/wiki/api/v2/spaces", nil, "Authorization", auth)
		wantStatus(t, r, 401)
		wantBody(t, r, `{"code":401,"message":"Unauthorized"}`)
	}
	r := b.do(t, "GET", b.url+"/oauth/token/accessible-resources", nil, "Authorization", "")
	wantStatus(t, r, 401)
	if n := b.srv.WriteCount(); n != 0 {
		t.Errorf("WriteCount = %d", n)
	}
	for _, req := range b.srv.Requests() {
		if strings.Contains(fmt.Sprint(req), testToken) {
			t.Errorf("token recorded: %+v", req)
		}
	}
}

func TestAccessibleResources(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do(t, "GET", b.url+"/oauth/token/accessible-resources", nil)
	wantStatus(t, r, 200)
	var res []struct {
		ID, Name, URL, AvatarURL string
		Scopes                   []string
	}
	if err := json.Unmarshal(r.body, &res); err != nil || len(res) != 1 {
		t.Fatalf("%v %s", err, r.body)
	}
	if res[0].ID != b.srv.CloudID() || res[0].URL != "https://example.atlassian.net" || len(res[0].Scopes) == 0 {
		t.Errorf("resource = %+v", res[0])
	}
}

func TestUnknownCloudID(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do(t, "GET", b.url+"/ex/confluence/nope/wiki/api/v2/spaces", nil)
	wantStatus(t, r, 404)
}

func TestOAuthToken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"r1"}, "client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret}}
	r := b.do(t, "POST", b.url+"/oauth/token", []byte(form.Encode()), "Content-Type", "application/x-www-form-urlencoded", "Authorization", "")
	wantStatus(t, r, 403)
	wantBody(t, r, `{"error":"invalid_grant","error_description":"Unknown or invalid refresh token."}`)
	r = b.do(t, "POST", b.url+"/oauth/token", map[string]any{"grant_type": "password", "client_id": DefaultClientID, "client_secret": DefaultClientSecret}, "Authorization", "")
	wantStatus(t, r, 400)
	if r.json(t)["error"] != "unsupported_grant_type" {
		t.Errorf("body %s", r.body)
	}
	// The OAuth app is not a service account: its credentials do not get
	// client-credentials tokens.
	r = b.do(t, "POST", b.url+"/oauth/token", map[string]any{"grant_type": "client_credentials", "client_id": DefaultClientID, "client_secret": DefaultClientSecret}, "Authorization", "")
	wantStatus(t, r, 401)
	if r.json(t)["error"] != "invalid_client" {
		t.Errorf("body %s", r.body)
	}
	if d := b.srv.Disallowed(); len(d) != 0 {
		t.Errorf("Disallowed = %+v", d)
	}
	if n := b.srv.WriteCount(); n != 0 {
		t.Errorf("token calls counted as Confluence writes: %d", n)
	}
}

func TestSpacesPagination(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var keys []string
	for i := range 30 {
		k := fmt.Sprintf("S%02d", i)
		b.srv.AddSpace(k, "Space "+k)
		keys = append(keys, k)
	}
	q := "keys=" + strings.Join(keys, ",")
	r := b.do(t, "GET", "/wiki/api/v2/spaces?"+q+"&limit=25", nil)
	wantStatus(t, r, 200)
	var page1 struct {
		Results []map[string]any
		Links   struct{ Next, Base string } `json:"_links"`
	}
	if err := json.Unmarshal(r.body, &page1); err != nil {
		t.Fatal(err)
	}
	if len(page1.Results) != 25 || page1.Links.Next == "" || page1.Links.Base != "https://example.atlassian.net/wiki" {
		t.Fatalf("page 1: %d results, links %+v", len(page1.Results), page1.Links)
	}
	if !strings.HasPrefix(page1.Links.Next, "/wiki/api/v2/spaces?") {
		t.Errorf("next = %q", page1.Links.Next)
	}
	if link := r.header.Get("Link"); link != "<"+page1.Links.Next+`>; rel="next"` {
		t.Errorf("Link = %q", link)
	}
	sp := page1.Results[0]
	for _, f := range []string{"id", "key", "name", "type", "status", "homepageId", "authorId", "createdAt", "_links"} {
		if _, ok := sp[f]; !ok {
			t.Errorf("space lacks %s: %v", f, sp)
		}
	}
	next, _ := url.Parse(page1.Links.Next)
	r = b.do(t, "GET", "/wiki/api/v2/spaces?"+q+"&limit=25&cursor="+url.QueryEscape(next.Query().Get("cursor")), nil)
	wantStatus(t, r, 200)
	m := r.json(t)
	if n := len(m["results"].([]any)); n != 5 {
		t.Errorf("page 2 has %d results", n)
	}
	if _, ok := m["_links"].(map[string]any)["next"]; ok || r.header.Get("Link") != "" {
		t.Errorf("last page has a next link: %s", r.body)
	}
	// Following _links.next re-rooted on the gateway works too.
	r = b.do(t, "GET", page1.Links.Next, nil)
	wantStatus(t, r, 200)

	r = b.do(t, "GET", "/wiki/api/v2/spaces?keys=TEAM", nil)
	res := r.json(t)["results"].([]any)
	if len(res) != 1 || res[0].(map[string]any)["id"] != b.spaceID || res[0].(map[string]any)["homepageId"] != b.homeID {
		t.Errorf("keys=TEAM: %s", r.body)
	}
	wantStatus(t, b.do(t, "GET", "/wiki/api/v2/spaces?limit=251", nil), 400)
	wantStatus(t, b.do(t, "GET", "/wiki/api/v2/spaces?cursor=bogus", nil), 400)
}

func TestCreatePage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do(t, "POST", "/wiki/api/v2/pages", createReq(b.spaceID, "  Retro 2026-09-15 ", "", `<p>Hi</p><ac:image><ri:attachment ri:filename="a.png"/></ac:image>`))
	wantStatus(t, r, 200)
	p := r.json(t)
	if p["title"] != "Retro 2026-09-15" || p["parentId"] != b.homeID || p["parentType"] != "page" || p["spaceId"] != b.spaceID || p["status"] != "current" {
		t.Errorf("page = %s", r.body)
	}
	if v := p["version"].(map[string]any)["number"]; v != 1.0 {
		t.Errorf("version = %v", v)
	}
	id := p["id"].(string)

	// Root level: no parent.
	r = b.do(t, "POST", "/wiki/api/v2/pages?root-level=true", createReq(b.spaceID, "Top", "", ""))
	wantStatus(t, r, 200)
	if r.json(t)["parentId"] != nil {
		t.Errorf("root-level page has parent: %s", r.body)
	}
	wantStatus(t, b.do(t, "POST", "/wiki/api/v2/pages?root-level=true", createReq(b.spaceID, "Top2", id, "")), 400)
	// Explicit parent; unknown parent and space.
	r = b.do(t, "POST", "/wiki/api/v2/pages", createReq(b.spaceID, "Child", id, ""))
	wantStatus(t, r, 200)
	if r.json(t)["parentId"] != id {
		t.Errorf("parent = %s", r.body)
	}
	r = b.do(t, "POST", "/wiki/api/v2/pages", createReq(b.spaceID, "Orphan", "999999999", ""))
	wantStatus(t, r, 404)
	if r.json(t)["errors"].([]any)[0].(map[string]any)["code"] != "NOT_FOUND" {
		t.Errorf("body %s", r.body)
	}
	otherSpace, otherHome := b.srv.AddSpace("OTHER", "Other")
	wantStatus(t, b.do(t, "POST", "/wiki/api/v2/pages", createReq(b.spaceID, "Cross", otherHome, "")), 404)
	wantStatus(t, b.do(t, "POST", "/wiki/api/v2/pages", createReq("424242", "Nowhere", "", "")), 404)
	wantStatus(t, b.do(t, "POST", "/wiki/api/v2/pages", createReq(b.spaceID, strings.Repeat("x", 256), "", "")), 400)
	wantStatus(t, b.do(t, "POST", "/wiki/api/v2/pages", map[string]any{"spaceId": b.spaceID, "title": ""}), 400)
	// The same title is fine in another space.
	wantStatus(t, b.do(t, "POST", "/wiki/api/v2/pages", createReq(otherSpace, "Retro 2026-09-15", "", "")), 200)

	// Title filter is exact and case-sensitive; body only with body-format=storage.
	r = b.do(t, "GET", "/wiki/api/v2/pages?space-id="+b.spaceID+"&title="+url.QueryEscape("Retro 2026-09-15"), nil)
	res := r.json(t)["results"].([]any)
	if len(res) != 1 || res[0].(map[string]any)["id"] != id || res[0].(map[string]any)["body"] != nil {
		t.Errorf("title lookup: %s", r.body)
	}
	r = b.do(t, "GET", "/wiki/api/v2/pages?space-id="+b.spaceID+"&title="+url.QueryEscape("retro 2026-09-15"), nil)
	if n := len(r.json(t)["results"].([]any)); n != 0 {
		t.Errorf("case-insensitive title match: %s", r.body)
	}
	r = b.do(t, "GET", "/wiki/api/v2/pages?id="+id+"&body-format=storage", nil)
	body := r.json(t)["results"].([]any)[0].(map[string]any)["body"].(map[string]any)["storage"].(map[string]any)
	if body["representation"] != "storage" || !strings.HasPrefix(body["value"].(string), "<p>Hi</p>") {
		t.Errorf("body = %v", body)
	}
	if got := b.srv.Pages("TEAM"); len(got) != 4 {
		t.Errorf("Pages = %+v", got)
	}
	tree := b.srv.Tree("TEAM")
	if !strings.Contains(tree, `"Team Home"`) || !strings.Contains(tree, `      "Child"`) {
		t.Errorf("Tree:\n%s", tree)
	}
}

func TestDuplicateTitle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.createPage(t, "Retro")["id"].(string)
	for _, title := range []string{"Retro", " retro ", "RETRO"} {
		r := b.do(t, "POST", "/wiki/api/v2/pages", createReq(b.spaceID, title, "", ""))
		wantStatus(t, r, 400)
		wantBody(t, r, `{"errors":[{"status":400,"code":"BAD_REQUEST","title":"A page with this title already exists: A page already exists with the same TITLE in this space","detail":null}]}`)
	}
	// Renaming another page onto the title fails the same way.
	other := b.createPage(t, "Other")["id"].(string)
	r := b.do(t, "PUT", "/wiki/api/v2/pages/"+other, updateReq(other, "retro", "", "", 2))
	wantStatus(t, r, 400)
	// A trashed page frees its title and disappears from the default listing.
	wantStatus(t, b.do(t, "DELETE", "/wiki/api/v2/pages/"+id, nil), 204)
	wantStatus(t, b.do(t, "DELETE", "/wiki/api/v2/pages/"+id, nil), 404)
	r = b.do(t, "GET", "/wiki/api/v2/pages?id="+id, nil)
	if n := len(r.json(t)["results"].([]any)); n != 0 {
		t.Errorf("trashed page listed: %s", r.body)
	}
	r = b.do(t, "GET", "/wiki/api/v2/pages?id="+id+"&status=trashed", nil)
	if n := len(r.json(t)["results"].([]any)); n != 1 {
		t.Errorf("status=trashed: %s", r.body)
	}
	b.createPage(t, "Retro")
}

func TestUpdatePage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.createPage(t, "Retro")
	id := p["id"].(string)

	r := b.do(t, "PUT", "/wiki/api/v2/pages/"+id, updateReq(id, "Retro", b.homeID, "<p>v2</p>", 1))
	wantStatus(t, r, 409)
	wantBody(t, r, `{"errors":[{"status":409,"code":"CONFLICT","title":"Version must be incremented when updating a page. Current Version: [1]. Provided version: [1]","detail":null}]}`)

	r = b.do(t, "PUT", "/wiki/api/v2/pages/"+id, updateReq(id, "Retro renamed", b.homeID, "<p>v2</p>", 2))
	wantStatus(t, r, 200)
	if m := r.json(t); m["version"].(map[string]any)["number"] != 2.0 || m["title"] != "Retro renamed" {
		t.Errorf("updated = %s", r.body)
	}
	// Keeping the own title (even re-cased) is not a duplicate.
	wantStatus(t, b.do(t, "PUT", "/wiki/api/v2/pages/"+id, updateReq(id, "retro RENAMED", "", "<p>v3</p>", 3)), 200)
	got := b.srv.Pages("TEAM")
	if len(got) != 2 || got[1].Version != 3 || got[1].Body != "<p>v3</p>" || got[1].ParentID != b.homeID {
		t.Errorf("Pages = %+v", got)
	}

	// Required fields, id mismatch, unknown page and parent.
	wantStatus(t, b.do(t, "PUT", "/wiki/api/v2/pages/"+id, map[string]any{"id": id, "status": "current", "title": "x"}), 400)
	wantStatus(t, b.do(t, "PUT", "/wiki/api/v2/pages/"+id, updateReq("1", "x", "", "", 4)), 400)
	wantStatus(t, b.do(t, "PUT", "/wiki/api/v2/pages/99999999", updateReq("99999999", "x", "", "", 2)), 404)
	wantStatus(t, b.do(t, "PUT", "/wiki/api/v2/pages/"+id, updateReq(id, "x", "99999999", "", 4)), 404)
	// Re-parent within the space.
	child := b.createPage(t, "Child")["id"].(string)
	r = b.do(t, "PUT", "/wiki/api/v2/pages/"+child, updateReq(child, "Child", id, "", 2))
	wantStatus(t, r, 200)
	if r.json(t)["parentId"] != id {
		t.Errorf("reparent: %s", r.body)
	}
	// A page cannot move below its own child.
	wantStatus(t, b.do(t, "PUT", "/wiki/api/v2/pages/"+id, updateReq(id, "x", child, "", 4)), 400)
}

func TestStorageFormat(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bad := map[string]string{
		"unclosed":    "<p>open",
		"mismatch":    "<p>a</br></p>",
		"nbsp":        "<p>a&nbsp;b</p>",
		"raw amp":     "<p>Q&A</p>",
		"valueless":   "<td nowrap>x</td>",
		"unquoted":    "<td colspan=2>x</td>",
		"stray close": "</p>",
	}
	for name, v := range bad {
		r := b.do(t, "POST", "/wiki/api/v2/pages", createReq(b.spaceID, "Bad "+name, "", v))
		wantStatus(t, r, 400)
		title := r.json(t)["errors"].([]any)[0].(map[string]any)["title"].(string)
		if !strings.HasPrefix(title, "Error parsing xhtml: ") {
			t.Errorf("%s: title %q", name, title)
		}
	}
	good := []string{
		"<p>a&#160;b &amp; &lt;c&gt;</p>",
		`<ac:structured-macro ac:name="status"><ac:parameter ac:name="colour">Green</ac:parameter></ac:structured-macro>`,
		"<ac:structured-macro ac:name=\"code\"><ac:plain-text-body><![CDATA[a < b && c]]></ac:plain-text-body></ac:structured-macro>",
		"<h1>T</h1><p>x<br/></p><table><tbody><tr><td>1</td></tr></tbody></table>",
		"",
	}
	for i, v := range good {
		wantStatus(t, b.do(t, "POST", "/wiki/api/v2/pages", createReq(b.spaceID, fmt.Sprint("Good ", i), "", v)), 200)
	}
	// PUT is checked too.
	id := b.createPage(t, "Upd")["id"].(string)
	wantStatus(t, b.do(t, "PUT", "/wiki/api/v2/pages/"+id, updateReq(id, "Upd", "", "<p>&nbsp;</p>", 2)), 400)
	// The nested body form is accepted.
	r := b.do(t, "POST", "/wiki/api/v2/pages", map[string]any{
		"spaceId": b.spaceID, "title": "Nested",
		"body": map[string]any{"storage": map[string]any{"representation": "storage", "value": "<p>n</p>"}},
	})
	wantStatus(t, r, 200)
	if got := b.srv.Pages("TEAM"); got[len(got)-1].Body != "<p>n</p>" {
		t.Errorf("nested body not stored: %+v", got[len(got)-1])
	}
}

func TestTooLarge(t *testing.T) {
	t.Parallel()
	b := setup(t)
	big := "<p>" + strings.Repeat("x", 5<<20) + "</p>"
	r := b.do(t, "POST", "/wiki/api/v2/pages", createReq(b.spaceID, "Big", "", big))
	wantStatus(t, r, 413)
	wantBody(t, r, `{"statusCode":413,"message":"com.atlassian.plugins.rest.common.limitrequest.RequestEntityTooLargeException: Request too large. Requests for this resource can be at most 5242880 bytes"}`)
	if len(b.srv.Pages("TEAM")) != 1 {
		t.Error("page created despite 413")
	}
}

func TestRetiredV1(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, c := range []struct{ method, path string }{
		{"GET", "/wiki/rest/api/content?spaceKey=TEAM&title=x"},
		{"POST", "/wiki/rest/api/content"},
		{"GET", "/wiki/rest/api/content/" + b.homeID},
		{"PUT", "/wiki/rest/api/content/" + b.homeID},
		{"DELETE", "/wiki/rest/api/content/" + b.homeID},
		{"GET", "/wiki/rest/api/space"},
		{"GET", "/wiki/rest/api/space/TEAM"},
	} {
		r := b.do(t, c.method, c.path, nil)
		wantStatus(t, r, 410)
		wantBody(t, r, `{"statusCode":410,"message":"com.atlassian.confluence.api.service.exceptions.GoneException: This deprecated endpoint has been removed","reason":"Gone"}`)
	}
	if n := len(b.srv.Disallowed()); n != 7 {
		t.Errorf("Disallowed has %d entries", n)
	}
	r := b.do(t, "GET", "/wiki/api/v2/nothing", nil)
	wantStatus(t, r, 404)
	if _, ok := r.json(t)["errors"]; !ok {
		t.Errorf("v2 404 body: %s", r.body)
	}
	r = b.do(t, "GET", "/wiki/rest/api/nothing", nil)
	wantStatus(t, r, 404)
	if r.json(t)["statusCode"] != 404.0 {
		t.Errorf("v1 404 body: %s", r.body)
	}
}

func TestDisallowedAndRequests(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.createPage(t, "P")["id"].(string)
	wantStatus(t, b.do(t, "GET", "/wiki/api/v2/pages?id="+id, nil), 200)
	if d := b.srv.Disallowed(); len(d) != 0 {
		t.Fatalf("allowed calls reported: %+v", d)
	}
	r := b.do(t, "GET", "/wiki/api/v2/pages/"+id+"?body-format=storage", nil)
	wantStatus(t, r, 200)
	d := b.srv.Disallowed()
	if len(d) != 1 || d[0].Route != "GET /wiki/api/v2/pages/{id}" || d[0].Path != "/ex/confluence/"+b.srv.CloudID()+"/wiki/api/v2/pages/"+id || d[0].RawQuery != "body-format=storage" || d[0].Status != 200 {
		t.Errorf("Disallowed = %+v", d)
	}
	wantStatus(t, b.do(t, "GET", "/wiki/api/v2/pages/77777777", nil), 404)
	if n := b.srv.WriteCount(); n != 1 {
		t.Errorf("WriteCount = %d", n)
	}
	if n := len(b.srv.Requests()); n != 4 {
		t.Errorf("Requests = %d", n)
	}
	b.srv.ResetRequests()
	if len(b.srv.Requests()) != 0 || b.srv.WriteCount() != 0 {
		t.Error("ResetRequests kept requests")
	}
}

func TestUserAndSearch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do(t, "GET", "/wiki/rest/api/user/current", nil)
	wantStatus(t, r, 200)
	if u := r.json(t); u["type"] != "known" || u["accountId"] == "" || u["displayName"] != "Fake Publisher" {
		t.Errorf("user = %s", r.body)
	}
	id := b.createPage(t, "Retro 2026-09-15")["id"].(string)
	b.createPage(t, "Retro 2026-09-22")
	b.srv.AddSpace("OTHER", "Other")
	search := func(cql string) []any {
		r := b.do(t, "GET", "/wiki/rest/api/content/search?expand=space&cql="+url.QueryEscape(cql), nil)
		wantStatus(t, r, 200)
		return r.json(t)["results"].([]any)
	}
	res := search(`type = page AND space = "TEAM" AND title = "Retro 2026-09-15"`)
	if len(res) != 1 || res[0].(map[string]any)["id"] != id || res[0].(map[string]any)["space"].(map[string]any)["key"] != "TEAM" {
		t.Errorf("exact search = %v", res)
	}
	if n := len(search(`type=page and space=TEAM and title ~ "retro*"`)); n != 2 {
		t.Errorf("contains search found %d", n)
	}
	if n := len(search(`space = OTHER AND title ~ "Retro"`)); n != 0 {
		t.Errorf("other space found %d", n)
	}
	for _, cql := range []string{`title = `, `title = "x" OR title = "y"`, `type = page AND`, `title = "open`} {
		r := b.do(t, "GET", "/wiki/rest/api/content/search?cql="+url.QueryEscape(cql), nil)
		wantStatus(t, r, 400)
		if r.json(t)["statusCode"] != 400.0 {
			t.Errorf("%q: %s", cql, r.body)
		}
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.srv.AddFault(Fault{
		Method: "POST", Path: regexp.MustCompile(`^/wiki/api/v2/pages$`), Status: 429, Times: 2,
		Header: http.Header{"Retry-After": {"1"}}, Body: `{"message":"slow down"}`,
	})
	for range 2 {
		r := b.do(t, "POST", "/wiki/api/v2/pages", createReq(b.spaceID, "P", "", ""))
		wantStatus(t, r, 429)
		if r.header.Get("Retry-After") != "1" || string(r.body) != `{"message":"slow down"}` {
			t.Errorf("fault answer: %v %s", r.header, r.body)
		}
	}
	wantStatus(t, b.do(t, "POST", "/wiki/api/v2/pages", createReq(b.spaceID, "P", "", "")), 200)
	if n := len(b.srv.Pages("TEAM")); n != 2 {
		t.Errorf("faulted requests had an effect: %d pages", n)
	}

	// AfterEffect: the page is created, the client sees a 504.
	b.srv.AddFault(Fault{Method: "POST", Path: regexp.MustCompile(`^/wiki/api/v2/pages$`), Status: 504, Times: 1, AfterEffect: true})
	wantStatus(t, b.do(t, "POST", "/wiki/api/v2/pages", createReq(b.spaceID, "Lost answer", "", "")), 504)
	if n := len(b.srv.Pages("TEAM")); n != 3 {
		t.Errorf("AfterEffect did not apply: %d pages", n)
	}
	wantStatus(t, b.do(t, "POST", "/wiki/api/v2/pages", createReq(b.spaceID, "Lost answer", "", "")), 400)

	// Forever, until cleared; method "" and nil path match everything.
	b.srv.AddFault(Fault{Status: 503})
	for range 3 {
		wantStatus(t, b.do(t, "GET", "/wiki/api/v2/spaces", nil), 503)
	}
	b.srv.ClearFaults()
	wantStatus(t, b.do(t, "GET", "/wiki/api/v2/spaces", nil), 200)
	if n := b.srv.WriteCount(); n != 5 {
		t.Errorf("WriteCount = %d, want 5", n)
	}
}

func TestHoldNext(t *testing.T) {
	t.Parallel()
	b := setup(t)
	re := regexp.MustCompile(`^/wiki/api/v2/pages$`)

	h := b.srv.HoldNext("POST", re)
	done := make(chan response)
	go func() { done <- b.do(t, "POST", "/wiki/api/v2/pages", createReq(b.spaceID, "Held", "", "")) }()
	<-h.Arrived
	// Other requests pass while one is held.
	wantStatus(t, b.do(t, "GET", "/wiki/api/v2/spaces", nil), 200)
	if n := len(b.srv.Pages("TEAM")); n != 1 {
		t.Fatalf("effect before release: %d pages", n)
	}
	h.Release(true)
	wantStatus(t, <-done, 200)
	if n := len(b.srv.Pages("TEAM")); n != 2 {
		t.Errorf("effect missing after release: %d pages", n)
	}

	// Release(false): 503 and no effect, even if the client has gone.
	h = b.srv.HoldNext("POST", re)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() {
		j, _ := json.Marshal(createReq(b.spaceID, "Abandoned", "", ""))
		req, _ := http.NewRequestWithContext(ctx, "POST", b.base+"/wiki/api/v2/pages", strings.NewReader(string(j)))
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-h.Arrived
	cancel()
	if err := <-errc; err == nil {
		t.Error("cancelled request succeeded")
	}
	h.Release(false)
	deadline := time.Now().Add(5 * time.Second)
	for {
		rs := b.srv.Requests()
		if last := rs[len(rs)-1]; last.Method == "POST" && last.Status == 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("held request never finished: %+v", rs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := len(b.srv.Pages("TEAM")); n != 2 {
		t.Errorf("Release(false) applied the effect: %d pages", n)
	}

	// A hold still pending at Close is released so Close does not hang.
	h = b.srv.HoldNext("", nil)
	go func() {
		if resp, err := http.Get(b.base + "/wiki/api/v2/spaces"); err == nil {
			resp.Body.Close()
		}
	}()
	<-h.Arrived
}

func TestLatency(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.srv.SetLatency(50 * time.Millisecond)
	start := time.Now()
	wantStatus(t, b.do(t, "GET", "/wiki/api/v2/spaces", nil), 200)
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("latency not applied: %v", d)
	}
	var seen []Request
	b.srv.SetLatency(0)
	b.srv.OnRequest(func(r Request) { seen = append(seen, r) })
	b.do(t, "GET", "/wiki/api/v2/spaces", nil)
	if len(seen) != 1 || seen[0].Route != "GET /wiki/api/v2/spaces" || !seen[0].Allowed {
		t.Errorf("OnRequest saw %+v", seen)
	}
}
