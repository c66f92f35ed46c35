package confluencetest

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

func TestAttachmentXSRF(t *testing.T) {
	t.Parallel()
	b := setup(t)
	body, ct := multipartBody(t, []filePart{{"a.png", "image/png", "PNG"}})
	path := "/wiki/rest/api/content/" + b.homeID + "/child/attachment"
	r := b.do(t, "POST", path, body, "Content-Type", ct)
	wantStatus(t, r, 403)
	wantBody(t, r, `{"statusCode":403,"message":"XSRF check failed"}`)
	r = b.do(t, "POST", path, body, "Content-Type", ct, "X-Atlassian-Token", "yes")
	wantStatus(t, r, 403)
	// The deprecated spelling still works on Cloud.
	wantStatus(t, b.do(t, "POST", path, body, "Content-Type", ct, "X-Atlassian-Token", "nocheck"), 200)
}

func TestAttachments(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pageID := b.createPage(t, "Retro")["id"].(string)
	path := "/wiki/rest/api/content/" + pageID + "/child/attachment"

	r := b.upload(t, path, []filePart{{"chart.png", "image/png", "PNG1"}, {"report.pdf", "application/pdf", "PDF1"}}, "Burndown", "Full report")
	wantStatus(t, r, 200)
	var created struct {
		Results []struct {
			ID, Type, Title, Status string
			Version                 struct{ Number int }
			Metadata                struct{ Comment, MediaType string }
			Extensions              struct {
				MediaType string
				FileSize  int
			}
			Links struct{ Download, Webui string } `json:"_links"`
		}
		Size int
	}
	if err := json.Unmarshal(r.body, &created); err != nil {
		t.Fatal(err)
	}
	if created.Size != 2 || len(created.Results) != 2 {
		t.Fatalf("created = %s", r.body)
	}
	c0 := created.Results[0]
	if !strings.HasPrefix(c0.ID, "att") || c0.Type != "attachment" || c0.Title != "chart.png" || c0.Version.Number != 1 ||
		c0.Metadata.Comment != "Burndown" || c0.Metadata.MediaType != "image/png" || c0.Extensions.FileSize != 4 ||
		c0.Links.Download != "/download/attachments/"+pageID+"/chart.png?version=1" {
		t.Errorf("attachment = %+v", c0)
	}
	got := b.srv.Attachments(pageID)
	if len(got) != 2 || string(got[1].Data) != "PDF1" || got[1].Comment != "Full report" || got[1].MediaType != "application/pdf" {
		t.Errorf("Attachments = %+v", got)
	}

	// Same name again, alone or with a new file: 400 and nothing added.
	for _, files := range [][]filePart{
		{{"chart.png", "image/png", "PNG2"}},
		{{"new.png", "image/png", "N"}, {"report.pdf", "application/pdf", "PDF2"}},
		{{"twice.png", "image/png", "1"}, {"twice.png", "image/png", "2"}},
	} {
		r = b.upload(t, path, files)
		wantStatus(t, r, 400)
		if strings.Contains(files[0].name, "twice") {
			continue
		}
		name := files[len(files)-1].name
		wantBody(t, r, `{"statusCode":400,"data":{"authorized":true,"valid":false,"errors":[],"successful":false},"message":"com.atlassian.confluence.api.service.exceptions.BadRequestException: Cannot add a new attachment with same file name as an existing attachment: `+name+`","reason":"Bad Request"}`)
	}
	if n := len(b.srv.Attachments(pageID)); n != 2 {
		t.Errorf("rejected upload added attachments: %d", n)
	}
	// Comments: one per file or none.
	wantStatus(t, b.upload(t, path, []filePart{{"x.png", "image/png", "1"}, {"y.png", "image/png", "2"}}, "only one"), 400)
	wantStatus(t, b.upload(t, "/wiki/rest/api/content/99999999/child/attachment", []filePart{{"x.png", "image/png", "1"}}), 404)

	// Find by filename, then upload a new version through /data.
	r = b.do(t, "GET", path+"?filename="+url.QueryEscape("chart.png")+"&expand=version", nil)
	wantStatus(t, r, 200)
	list := r.json(t)
	res := list["results"].([]any)
	if len(res) != 1 || res[0].(map[string]any)["id"] != c0.ID || list["size"] != 1.0 {
		t.Fatalf("filename filter: %s", r.body)
	}
	r = b.do(t, "GET", path+"?filename=CHART.PNG", nil)
	if n := len(r.json(t)["results"].([]any)); n != 0 {
		t.Errorf("filename filter is not exact: %s", r.body)
	}
	r = b.upload(t, path+"/"+c0.ID+"/data", []filePart{{"chart.png", "image/png", "PNG-v2"}}, "Burndown v2")
	wantStatus(t, r, 200)
	single := r.json(t)
	if single["id"] != c0.ID || single["version"].(map[string]any)["number"] != 2.0 || single["results"] != nil {
		t.Errorf("/data answer = %s", r.body)
	}
	if got := b.srv.Attachments(pageID)[0]; got.Version != 2 || string(got.Data) != "PNG-v2" || got.Comment != "Burndown v2" {
		t.Errorf("after /data: %+v", got)
	}
	wantStatus(t, b.upload(t, path+"/att1/data", []filePart{{"chart.png", "image/png", "x"}}), 404)
	wantStatus(t, b.upload(t, path+"/"+c0.ID+"/data", []filePart{{"a.png", "image/png", "1"}, {"b.png", "image/png", "2"}}), 400)
	wantStatus(t, b.upload(t, path+"/"+c0.ID+"/data", []filePart{{"report.pdf", "image/png", "1"}}), 400)

	if tree := b.srv.Tree("TEAM"); !strings.Contains(tree, "chart.png image/png 6 bytes v2") {
		t.Errorf("Tree:\n%s", tree)
	}
	if d := b.srv.Disallowed(); len(d) != 0 {
		t.Errorf("Disallowed = %+v", d)
	}
}

func TestAttachmentPagination(t *testing.T) {
	t.Parallel()
	b := setup(t)
	path := "/wiki/rest/api/content/" + b.homeID + "/child/attachment"
	var files []filePart
	for _, n := range []string{"a", "b", "c"} {
		files = append(files, filePart{n + ".txt", "text/plain", n})
	}
	wantStatus(t, b.upload(t, path, files), 200)
	r := b.do(t, "GET", path+"?limit=2", nil)
	m := r.json(t)
	links := m["_links"].(map[string]any)
	if len(m["results"].([]any)) != 2 || links["base"] != "https://example.atlassian.net/wiki" || links["context"] != "/wiki" {
		t.Fatalf("page 1 = %s", r.body)
	}
	next, _ := links["next"].(string)
	if !strings.HasPrefix(next, "/rest/api/content/"+b.homeID+"/child/attachment?") {
		t.Fatalf("next = %q", next)
	}
	r = b.do(t, "GET", "/wiki"+next, nil)
	m = r.json(t)
	if len(m["results"].([]any)) != 1 || m["_links"].(map[string]any)["next"] != nil {
		t.Errorf("page 2 = %s", r.body)
	}
	wantStatus(t, b.do(t, "GET", "/wiki/rest/api/content/99999999/child/attachment", nil), 404)
}
