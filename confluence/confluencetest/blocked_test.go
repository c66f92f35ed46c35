package confluencetest

import "testing"

// A blocked space still lists; its pages are left out of lists and search;
// creating, updating or uploading there is refused 403 naming the policy;
// another space is untouched; lifting the rule restores everything.
func TestBlockedSpace(t *testing.T) {
	t.Parallel()
	b := setup(t)
	page := b.createPage(t, "Before the rule")
	otherID, _ := b.srv.AddSpace("OPS", "Ops")
	b.srv.BlockSpace("TEAM")

	r := b.do(t, "GET", "/wiki/api/v2/spaces?keys=TEAM", nil)
	wantStatus(t, r, 200)
	if res := r.json(t)["results"].([]any); len(res) != 1 {
		t.Fatalf("blocked space not listed: %s", r.body)
	}
	r = b.do(t, "GET", "/wiki/api/v2/pages?space-id="+b.spaceID, nil)
	if res := r.json(t)["results"].([]any); len(res) != 0 {
		t.Fatalf("blocked content listed: %s", r.body)
	}
	r = b.do(t, "POST", "/wiki/api/v2/pages", createReq(b.spaceID, "New", "", "<p>x</p>"))
	wantStatus(t, r, 403)
	wantBody(t, r, `{"errors":[{"status":403,"code":"FORBIDDEN","title":"`+BlockedMessage+`","detail":null}]}`)
	r = b.do(t, "PUT", "/wiki/api/v2/pages/"+page["id"].(string), updateReq(page["id"].(string), "Before the rule", "", "<p>y</p>", 2))
	wantStatus(t, r, 403)
	r = b.do(t, "GET", "/wiki/rest/api/content/"+page["id"].(string)+"/child/attachment", nil)
	wantStatus(t, r, 403)
	r = b.do(t, "POST", "/wiki/api/v2/pages", createReq(otherID, "Elsewhere", "", "<p>x</p>"))
	wantStatus(t, r, 200)
	if n := b.srv.BlockedRefusals(); n != 3 {
		t.Errorf("BlockedRefusals = %d, want 3", n)
	}

	b.srv.UnblockSpace("TEAM")
	r = b.do(t, "POST", "/wiki/api/v2/pages", createReq(b.spaceID, "New", "", "<p>x</p>"))
	wantStatus(t, r, 200)
}
