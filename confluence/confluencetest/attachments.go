package confluencetest

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// v1 attachments, the only upload path on Cloud (confluence-api.md §2.7).

const v1Base = "/wiki/rest/api"

func contentNotFound(w http.ResponseWriter, id string) {
	writeV1Error(w, http.StatusNotFound,
		"com.atlassian.confluence.api.service.exceptions.NotFoundException: No content found with id: ContentId{id="+id+"}")
}

// livePage returns a page that can carry attachments. Callers hold s.mu.
func (s *Server) livePage(id string) *page {
	p := s.pages[id]
	if p == nil || p.status == "trashed" {
		return nil
	}
	return p
}

func (s *Server) listAttachments(w http.ResponseWriter, c *call) {
	q := c.r.URL.Query()
	start, limit := 0, 50
	if v := q.Get("start"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeV1Error(w, http.StatusBadRequest, "start must be a non-negative integer")
			return
		}
		start = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeV1Error(w, http.StatusBadRequest, "limit must be a non-negative integer")
			return
		}
		limit = min(n, 200) // v1 caps limits silently
	}
	_, byName := q["filename"]
	_, byType := q["mediaType"]

	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.livePage(c.args["id"])
	if p == nil {
		contentNotFound(w, c.args["id"])
		return
	}
	var matched []*attachment
	for _, a := range p.attachments {
		if byName && a.title != q.Get("filename") || byType && a.mediaType != q.Get("mediaType") {
			continue
		}
		matched = append(matched, a)
	}
	end := min(start+limit, len(matched))
	from := min(start, end)
	results := make([]any, 0, end-from)
	for _, a := range matched[from:end] {
		results = append(results, s.attachmentJSON(a))
	}
	self := v1Base + "/content/" + p.id + "/child/attachment"
	links := map[string]any{"base": s.siteURL + "/wiki", "context": "/wiki", "self": s.siteURL + self}
	if end < len(matched) {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("start", strconv.Itoa(end))
		nq.Set("limit", strconv.Itoa(limit))
		// v1 next links are relative to _links.base, which already ends in /wiki.
		links["next"] = strings.TrimPrefix(self, "/wiki") + "?" + nq.Encode()
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"results": results, "start": start, "limit": limit, "size": len(results), "_links": links,
	})
}

func (s *Server) attachmentJSON(a *attachment) map[string]any {
	down := "/download/attachments/" + a.pageID + "/" + url.PathEscape(a.title) + "?version=" + strconv.Itoa(a.version)
	return map[string]any{
		"id": a.id, "type": "attachment", "status": "current", "title": a.title,
		"version": map[string]any{
			"number": a.version, "minorEdit": false, "when": a.modifiedAt.Format(timeLayout),
			"by": map[string]any{"type": "known", "accountId": accountID},
		},
		"container": map[string]any{"id": a.pageID, "type": "page"},
		"metadata":  map[string]any{"comment": a.comment, "mediaType": a.mediaType},
		"extensions": map[string]any{
			"mediaType": a.mediaType, "fileSize": len(a.data), "comment": a.comment,
		},
		"_links": map[string]any{
			"webui":    "/pages/viewpageattachments.action?pageId=" + a.pageID + "&preview=" + url.QueryEscape("/"+a.pageID+"/"+a.id+"/"+a.title),
			"download": down,
			"self":     s.siteURL + v1Base + "/content/" + a.id,
		},
	}
}

// upload is one file part of a multipart upload.
type upload struct {
	name, mediaType string
	data            []byte
}

// uploadForm is a parsed multipart attachment request.
type uploadForm struct {
	files    []upload
	comments []string
}

// parseUpload checks the XSRF header and parses the multipart body. On
// failure it has already answered.
func parseUpload(w http.ResponseWriter, c *call) (*uploadForm, bool) {
	// "no-check" is current; Cloud still accepts the deprecated "nocheck".
	if t := c.r.Header.Get("X-Atlassian-Token"); t != "no-check" && t != "nocheck" {
		writeJSON(w, http.StatusForbidden, map[string]any{"statusCode": http.StatusForbidden, "message": "XSRF check failed"})
		return nil, false
	}
	mt, params, err := mime.ParseMediaType(c.r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		writeV1Error(w, http.StatusUnsupportedMediaType, "Content-Type must be multipart/form-data with a boundary")
		return nil, false
	}
	mr := multipart.NewReader(bytes.NewReader(c.body), params["boundary"])
	f := &uploadForm{}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			writeV1Error(w, http.StatusBadRequest, "malformed multipart body: "+err.Error())
			return nil, false
		}
		data, err := io.ReadAll(part)
		if err != nil {
			writeV1Error(w, http.StatusBadRequest, "malformed multipart body: "+err.Error())
			return nil, false
		}
		switch part.FormName() {
		case "file":
			name := part.FileName() // already reduced to its base name, as Confluence does
			if name == "" {
				writeV1Error(w, http.StatusBadRequest, "file part without a filename")
				return nil, false
			}
			ct := part.Header.Get("Content-Type")
			if ct == "" {
				ct = "application/octet-stream"
			}
			if m, _, err := mime.ParseMediaType(ct); err == nil {
				ct = m
			}
			f.files = append(f.files, upload{name: name, mediaType: ct, data: data})
		case "comment":
			f.comments = append(f.comments, string(data))
		}
	}
	if len(f.files) == 0 {
		writeV1Error(w, http.StatusBadRequest, "At least one file must be provided")
		return nil, false
	}
	if len(f.comments) > 0 && len(f.comments) != len(f.files) {
		writeV1Error(w, http.StatusBadRequest, fmt.Sprintf(
			"com.atlassian.confluence.api.service.exceptions.BadRequestException: Comments must be provided for all files or none: %d files, %d comments",
			len(f.files), len(f.comments)))
		return nil, false
	}
	return f, true
}

func (f *uploadForm) comment(i int) string {
	if i < len(f.comments) {
		return f.comments[i]
	}
	return ""
}

func sameName(name string) string {
	return "com.atlassian.confluence.api.service.exceptions.BadRequestException: Cannot add a new attachment with same file name as an existing attachment: " + name
}

// createAttachments adds new attachments, all or nothing: one clashing name
// rejects the whole request.
func (s *Server) createAttachments(w http.ResponseWriter, c *call) {
	form, ok := parseUpload(w, c)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.livePage(c.args["id"])
	if p == nil {
		contentNotFound(w, c.args["id"])
		return
	}
	seen := map[string]bool{}
	for _, a := range p.attachments {
		seen[a.title] = true
	}
	for _, u := range form.files {
		if seen[u.name] {
			writeV1Error(w, http.StatusBadRequest, sameName(u.name))
			return
		}
		seen[u.name] = true
	}
	now := s.clock()
	results := make([]any, 0, len(form.files))
	for i, u := range form.files {
		a := &attachment{
			id: "att" + s.newID(), pageID: p.id, title: u.name, mediaType: u.mediaType,
			comment: form.comment(i), version: 1, data: u.data, createdAt: now, modifiedAt: now,
		}
		p.attachments = append(p.attachments, a)
		results = append(results, s.attachmentJSON(a))
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"results": results, "size": len(results),
		"_links": map[string]any{"base": s.siteURL + "/wiki", "context": "/wiki"},
	})
}

// updateAttachmentData stores a new version of one attachment. Cloud answers
// this one with a bare attachment object rather than {results:[…]}.
func (s *Server) updateAttachmentData(w http.ResponseWriter, c *call) {
	form, ok := parseUpload(w, c)
	if !ok {
		return
	}
	if len(form.files) != 1 {
		writeV1Error(w, http.StatusBadRequest, "Exactly one file must be provided")
		return
	}
	u := form.files[0]
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.livePage(c.args["id"])
	if p == nil {
		contentNotFound(w, c.args["id"])
		return
	}
	attID := c.args["attachmentId"]
	if !strings.HasPrefix(attID, "att") {
		attID = "att" + attID // both "att123" and "123" name the same attachment
	}
	var a *attachment
	for _, x := range p.attachments {
		if x.id == attID {
			a = x
		}
	}
	if a == nil {
		contentNotFound(w, c.args["attachmentId"])
		return
	}
	if u.name != a.title {
		for _, x := range p.attachments {
			if x != a && x.title == u.name {
				writeV1Error(w, http.StatusBadRequest, sameName(u.name))
				return
			}
		}
		a.title = u.name // a different file name renames the attachment
	}
	a.data, a.mediaType, a.comment = u.data, u.mediaType, form.comment(0)
	a.version++
	a.modifiedAt = s.clock()
	writeJSON(w, http.StatusOK, s.attachmentJSON(a))
}
