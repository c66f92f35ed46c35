package confluencetest

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// v2 spaces and pages (confluence-api.md §1.3–§1.7, §1.10).

const timeLayout = "2006-01-02T15:04:05.000Z"

// duplicateTitle is the exact message Cloud returns for a taken title (md2conf#149).
const duplicateTitle = "A page with this title already exists: A page already exists with the same TITLE in this space"

// listParams are the paging parameters shared by the v2 list endpoints.
type listParams struct {
	limit, offset int
}

// parseList reads limit (1–250, default 25) and cursor. Cursors are opaque
// to clients; here they wrap an offset.
func parseList(q url.Values) (listParams, error) {
	lp := listParams{limit: 25}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 250 {
			return lp, fmt.Errorf("limit must be between 1 and 250, got %q", v)
		}
		lp.limit = n
	}
	if c := q.Get("cursor"); c != "" {
		raw, err := base64.RawURLEncoding.DecodeString(c)
		off, ok := strings.CutPrefix(string(raw), "offset:")
		n, err2 := strconv.Atoi(off)
		if err != nil || !ok || err2 != nil || n < 0 {
			return lp, fmt.Errorf("invalid cursor %q", c)
		}
		lp.offset = n
	}
	return lp, nil
}

// page answers a v2 list: results plus _links.next and a Link header when
// more remain. The next URL keeps the request's other parameters, relative
// to the site like Cloud's (§1.2).
func (s *Server) writeV2List(w http.ResponseWriter, r *http.Request, path string, lp listParams, items []any) {
	end := min(lp.offset+lp.limit, len(items))
	start := min(lp.offset, end)
	links := map[string]any{"base": s.siteURL + "/wiki"}
	if end < len(items) {
		q := r.URL.Query()
		q.Set("cursor", base64.RawURLEncoding.EncodeToString([]byte("offset:"+strconv.Itoa(end))))
		q.Set("limit", strconv.Itoa(lp.limit))
		next := path + "?" + q.Encode()
		links["next"] = next
		w.Header().Set("Link", "<"+next+`>; rel="next"`)
	}
	results := items[start:end]
	if results == nil {
		results = []any{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": results, "_links": links})
}

// splitList splits a comma list, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, x := range strings.Split(v, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// int64List parses a comma list of ids; the spec types them int64.
// v2ListQuery reads a v2 list request's paging and its int64 id lists; on
// a bad value it has answered 400, as Confluence does.
func v2ListQuery(w http.ResponseWriter, q url.Values, idParams ...string) (listParams, []map[string]bool, bool) {
	lp, err := parseList(q)
	lists := make([]map[string]bool, len(idParams))
	for i, name := range idParams {
		if err != nil {
			break
		}
		lists[i], err = int64List(q, name)
	}
	if err != nil {
		writeV2Error(w, http.StatusBadRequest, err.Error())
		return lp, nil, false
	}
	return lp, lists, true
}

func int64List(q url.Values, name string) (map[string]bool, error) {
	var vals []string
	for _, v := range q[name] {
		vals = append(vals, splitList(v)...)
	}
	if len(vals) == 0 {
		return nil, nil
	}
	set := map[string]bool{}
	for _, v := range vals {
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			return nil, fmt.Errorf("%s: %q is not a valid id", name, v)
		}
		set[v] = true
	}
	return set, nil
}

func (s *Server) getSpaces(w http.ResponseWriter, c *call) {
	q := c.r.URL.Query()
	lp, lists, ok := v2ListQuery(w, q, "ids")
	if !ok {
		return
	}
	ids := lists[0]
	keys := map[string]bool{}
	for _, v := range q["keys"] {
		for _, k := range splitList(v) {
			keys[k] = true
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var items []any
	for _, sp := range s.spaces {
		if ids != nil && !ids[sp.id] || len(keys) > 0 && !keys[sp.key] && !keys[sp.alias] {
			continue
		}
		if t := q.Get("type"); t != "" && t != "global" {
			continue
		}
		if st := q.Get("status"); st != "" && st != "current" {
			continue
		}
		items = append(items, s.spaceJSON(sp))
	}
	s.writeV2List(w, c.r, "/wiki/api/v2/spaces", lp, items)
}

func (s *Server) spaceJSON(sp *space) map[string]any {
	visible := cmp.Or(sp.alias, sp.key)
	return map[string]any{
		"id": sp.id, "key": sp.key, "name": sp.name, "type": "global", "status": "current",
		"homepageId": sp.homepageID, "authorId": accountID, "currentActiveAlias": visible,
		"createdAt": sp.createdAt.Format(timeLayout),
		"_links":    map[string]any{"webui": "/spaces/" + visible},
	}
}

// pageStatuses are the statuses GET /pages accepts.
var pageStatuses = map[string]bool{"current": true, "archived": true, "deleted": true, "trashed": true, "draft": true}

func (s *Server) getPages(w http.ResponseWriter, c *call) {
	q := c.r.URL.Query()
	lp, lists, ok := v2ListQuery(w, q, "id", "space-id")
	if !ok {
		return
	}
	ids, spaceIDs := lists[0], lists[1]
	statuses := map[string]bool{"current": true, "archived": true}
	if vs := q["status"]; len(vs) > 0 {
		statuses = map[string]bool{}
		for _, v := range vs {
			for _, st := range splitList(v) {
				if !pageStatuses[st] {
					writeV2Error(w, http.StatusBadRequest, "Invalid status: "+st)
					return
				}
				statuses[st] = true
			}
		}
	}
	bodyFormat, err := bodyFormatParam(q)
	if err != nil {
		writeV2Error(w, http.StatusBadRequest, err.Error())
		return
	}
	_, hasTitle := q["title"]
	title := q.Get("title")

	s.mu.Lock()
	defer s.mu.Unlock()
	var matched []*page
	for _, p := range s.pageOrder {
		switch {
		case ids != nil && !ids[p.id], spaceIDs != nil && !spaceIDs[p.spaceID],
			!statuses[p.status], hasTitle && p.title != title, // exact, case-sensitive
			s.spaceBlocked(p.spaceID): // an app access rule hides the space's content
			continue
		}
		matched = append(matched, p)
	}
	if err := sortPages(matched, q.Get("sort")); err != nil {
		writeV2Error(w, http.StatusBadRequest, err.Error())
		return
	}
	items := make([]any, 0, len(matched))
	for _, p := range matched {
		items = append(items, s.pageJSON(p, bodyFormat, false))
	}
	s.writeV2List(w, c.r, "/wiki/api/v2/pages", lp, items)
}

func bodyFormatParam(q url.Values) (string, error) {
	switch f := q.Get("body-format"); f {
	case "", "storage":
		return f, nil
	case "atlas_doc_format", "view", "export_view", "anonymous_export_view", "styled_view", "editor":
		return "", fmt.Errorf("body-format %q is not supported by the fake (storage only)", f)
	default:
		return "", fmt.Errorf("Invalid body-format: %s", f)
	}
}

func sortPages(ps []*page, key string) error {
	desc := strings.HasPrefix(key, "-")
	var less func(a, b *page) bool
	switch strings.TrimPrefix(key, "-") {
	case "", "id":
		less = func(a, b *page) bool { return numLess(a.id, b.id) }
	case "title":
		less = func(a, b *page) bool { return a.title < b.title }
	case "created-date":
		less = func(a, b *page) bool {
			return a.createdAt.Before(b.createdAt) || a.createdAt.Equal(b.createdAt) && numLess(a.id, b.id)
		}
	case "modified-date":
		less = func(a, b *page) bool {
			return a.modifiedAt.Before(b.modifiedAt) || a.modifiedAt.Equal(b.modifiedAt) && numLess(a.id, b.id)
		}
	default:
		return fmt.Errorf("Invalid sort: %s", key)
	}
	sort.SliceStable(ps, func(i, j int) bool {
		if desc {
			return less(ps[j], ps[i])
		}
		return less(ps[i], ps[j])
	})
	return nil
}

func numLess(a, b string) bool {
	x, _ := strconv.Atoi(a)
	y, _ := strconv.Atoi(b)
	return x < y
}

// pageJSON renders PageBulk/PageSingle. Callers hold s.mu.
func (s *Server) pageJSON(p *page, bodyFormat string, withBase bool) map[string]any {
	sp := s.spaceByID(p.spaceID)
	var parentID, parentType any
	if p.parentID != "" {
		parentID, parentType = p.parentID, "page"
	}
	links := map[string]any{
		"webui":  "/spaces/" + sp.key + "/pages/" + p.id + "/" + url.PathEscape(strings.ReplaceAll(p.title, " ", "+")),
		"editui": "/pages/resumedraft.action?draftId=" + p.id,
		"tinyui": "/x/" + base64.RawURLEncoding.EncodeToString([]byte(p.id)),
	}
	if withBase {
		links["base"] = s.siteURL + "/wiki"
	}
	out := map[string]any{
		"id": p.id, "status": p.status, "title": p.title, "spaceId": p.spaceID,
		"parentId": parentID, "parentType": parentType, "position": p.position,
		"authorId": accountID, "ownerId": accountID, "lastOwnerId": nil,
		"createdAt": p.createdAt.Format(timeLayout),
		"version": map[string]any{
			"number": p.version, "message": p.versionMessage, "minorEdit": false,
			"authorId": accountID, "createdAt": p.modifiedAt.Format(timeLayout),
		},
		"_links": links,
	}
	if bodyFormat == "storage" {
		out["body"] = map[string]any{"storage": map[string]any{"representation": "storage", "value": p.body}}
	}
	return out
}

func (s *Server) getPage(w http.ResponseWriter, c *call) {
	bodyFormat, err := bodyFormatParam(c.r.URL.Query())
	if err != nil {
		writeV2Error(w, http.StatusBadRequest, err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pages[c.args["id"]]
	if p == nil || p.status == "trashed" && c.r.URL.Query().Get("status") != "trashed" {
		writeV2Error(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, s.pageJSON(p, bodyFormat, true))
}

// bodyWrite accepts both PageBodyWrite and PageNestedBodyWrite.
type bodyWrite struct {
	Representation *string    `json:"representation"`
	Value          *string    `json:"value"`
	Storage        *bodyWrite `json:"storage"`
	AtlasDoc       *bodyWrite `json:"atlas_doc_format"`
	Wiki           *bodyWrite `json:"wiki"`
}

// storageValue returns the storage-format value of a body, or an error
// message for a body the fake cannot take.
func (b *bodyWrite) storageValue() (string, error) {
	if b == nil {
		return "", nil
	}
	if b.Storage != nil {
		b = b.Storage
	} else if b.AtlasDoc != nil || b.Wiki != nil {
		return "", fmt.Errorf("the fake accepts only the storage representation")
	}
	if b.Representation != nil && *b.Representation != "storage" {
		return "", fmt.Errorf("the fake accepts only the storage representation, got %q", *b.Representation)
	}
	if b.Value == nil {
		return "", nil
	}
	return *b.Value, nil
}

type pageWrite struct {
	ID       *string    `json:"id"`
	SpaceID  *string    `json:"spaceId"`
	Status   *string    `json:"status"`
	Title    *string    `json:"title"`
	ParentID *string    `json:"parentId"`
	OwnerID  *string    `json:"ownerId"`
	Subtype  *string    `json:"subtype"`
	Body     *bodyWrite `json:"body"`
	Version  *struct {
		Number  *int   `json:"number"`
		Message string `json:"message"`
	} `json:"version"`
}

// decodePageWrite parses a create/update body, enforcing the 5 MiB cap first
// as the gateway does.
func decodePageWrite(w http.ResponseWriter, c *call) (*pageWrite, bool) {
	if len(c.body) > pageBodyLimit {
		writeTooLarge(w)
		return nil, false
	}
	var pw pageWrite
	d := json.NewDecoder(bytes.NewReader(c.body))
	if err := d.Decode(&pw); err != nil {
		writeV2Error(w, http.StatusBadRequest, "Invalid request body: "+err.Error())
		return nil, false
	}
	return &pw, true
}

func (s *Server) createPage(w http.ResponseWriter, c *call) {
	pw, ok := decodePageWrite(w, c)
	if !ok {
		return
	}
	q := c.r.URL.Query()
	rootLevel := q.Get("root-level") == "true"
	status := "current"
	if pw.Status != nil {
		status = *pw.Status
	}
	if status != "current" && status != "draft" {
		writeV2Error(w, http.StatusBadRequest, "Invalid status: "+status)
		return
	}
	if pw.SpaceID == nil || *pw.SpaceID == "" {
		writeV2Error(w, http.StatusBadRequest, "spaceId is required")
		return
	}
	title := ""
	if pw.Title != nil {
		title = strings.TrimSpace(*pw.Title) // Confluence stores titles trimmed
	}
	if title == "" && status != "draft" {
		writeV2Error(w, http.StatusBadRequest, "Title is required for a page that is not a draft")
		return
	}
	if len([]rune(title)) > 255 {
		writeV2Error(w, http.StatusBadRequest, "Title cannot exceed 255 characters")
		return
	}
	if rootLevel && pw.ParentID != nil {
		writeV2Error(w, http.StatusBadRequest, "parentId must not be provided when root-level is true")
		return
	}
	body, ok := storageBody(w, pw)
	if !ok {
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.spaceByID(*pw.SpaceID)
	if sp == nil {
		writeV2Error(w, http.StatusNotFound, "Space not found: "+*pw.SpaceID)
		return
	}
	parentID := ""
	switch {
	case pw.ParentID != nil:
		parent := s.pages[*pw.ParentID]
		if parent == nil || parent.spaceID != sp.id || parent.status != "current" {
			writeV2Error(w, http.StatusNotFound, "Parent not found: "+*pw.ParentID)
			return
		}
		parentID = parent.id
	case !rootLevel:
		parentID = sp.homepageID
	}
	if status == "current" && s.titleTaken(sp.id, title, "") {
		writeV2Error(w, http.StatusBadRequest, duplicateTitle)
		return
	}
	now := s.clock()
	p := &page{
		id: s.newID(), spaceID: sp.id, parentID: parentID, title: title, body: body,
		status: status, version: 1, createdAt: now, modifiedAt: now,
	}
	s.addPage(p)
	writeJSON(w, http.StatusOK, s.pageJSON(p, "storage", true)) // 200, not 201 (§1.5)
}

// addPage stores p and gives it the next position under its parent.
func (s *Server) addPage(p *page) {
	for _, o := range s.pageOrder {
		if o.spaceID == p.spaceID && o.parentID == p.parentID && o.position >= p.position {
			p.position = o.position + 1
		}
	}
	s.pages[p.id] = p
	s.pageOrder = append(s.pageOrder, p)
}

// titleTaken: current and archived pages hold their title; the comparison
// ignores case and surrounding space (§1.10). Callers hold s.mu.
func (s *Server) titleTaken(spaceID, title, exceptID string) bool {
	title = strings.TrimSpace(title)
	for _, p := range s.pageOrder {
		if p.spaceID == spaceID && p.id != exceptID && (p.status == "current" || p.status == "archived") &&
			strings.EqualFold(strings.TrimSpace(p.title), title) {
			return true
		}
	}
	return false
}

func (s *Server) updatePage(w http.ResponseWriter, c *call) {
	pw, ok := decodePageWrite(w, c)
	if !ok {
		return
	}
	var missing []string
	if pw.ID == nil {
		missing = append(missing, "id")
	}
	if pw.Status == nil {
		missing = append(missing, "status")
	}
	if pw.Title == nil {
		missing = append(missing, "title")
	}
	if pw.Body == nil {
		missing = append(missing, "body")
	}
	if pw.Version == nil || pw.Version.Number == nil {
		missing = append(missing, "version.number")
	}
	if len(missing) > 0 {
		writeV2Error(w, http.StatusBadRequest, "Missing required fields: "+strings.Join(missing, ", "))
		return
	}
	if *pw.ID != c.args["id"] {
		writeV2Error(w, http.StatusBadRequest, "The id in the request body does not match the id in the path")
		return
	}
	if *pw.Status != "current" {
		writeV2Error(w, http.StatusBadRequest, "the fake supports only status \"current\" on update, got "+strconv.Quote(*pw.Status))
		return
	}
	title := strings.TrimSpace(*pw.Title)
	if title == "" {
		writeV2Error(w, http.StatusBadRequest, "Title cannot be empty")
		return
	}
	if len([]rune(title)) > 255 {
		writeV2Error(w, http.StatusBadRequest, "Title cannot exceed 255 characters")
		return
	}
	body, ok := storageBody(w, pw)
	if !ok {
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pages[c.args["id"]]
	if p == nil || p.status == "trashed" {
		writeV2Error(w, http.StatusNotFound, "Not Found")
		return
	}
	if pw.SpaceID != nil && *pw.SpaceID != p.spaceID {
		writeV2Error(w, http.StatusBadRequest, "Moving a page to a different space is not supported")
		return
	}
	if n := *pw.Version.Number; n != p.version+1 {
		writeV2Error(w, http.StatusConflict, fmt.Sprintf(
			"Version must be incremented when updating a page. Current Version: [%d]. Provided version: [%d]", p.version, n))
		return
	}
	parentID := p.parentID
	if pw.ParentID != nil && *pw.ParentID != p.parentID {
		parent := s.pages[*pw.ParentID]
		if parent == nil || parent.spaceID != p.spaceID || parent.status != "current" {
			writeV2Error(w, http.StatusNotFound, "Parent not found: "+*pw.ParentID)
			return
		}
		if s.isDescendant(parent.id, p.id) {
			writeV2Error(w, http.StatusBadRequest, "A page cannot be moved under itself or its descendants")
			return
		}
		parentID = parent.id
	}
	if s.titleTaken(p.spaceID, title, p.id) {
		writeV2Error(w, http.StatusBadRequest, duplicateTitle)
		return
	}
	p.title, p.body, p.parentID = title, body, parentID
	p.version++
	p.versionMessage = pw.Version.Message
	s.updates = append(s.updates, Update{PageID: p.id, Version: p.version, Message: p.versionMessage})
	p.modifiedAt = s.clock()
	writeJSON(w, http.StatusOK, s.pageJSON(p, "storage", true))
}

// isDescendant reports whether id is root or lies below it. Callers hold s.mu.
func (s *Server) isDescendant(id, root string) bool {
	for id != "" {
		if id == root {
			return true
		}
		p := s.pages[id]
		if p == nil {
			return false
		}
		id = p.parentID
	}
	return false
}

// deletePage moves a page to the trash. Its children move up to its parent,
// as Confluence does when a page is trashed.
func (s *Server) deletePage(w http.ResponseWriter, c *call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pages[c.args["id"]]
	if p == nil || p.status == "trashed" {
		writeV2Error(w, http.StatusNotFound, "Not Found")
		return
	}
	p.status = "trashed"
	p.modifiedAt = s.clock()
	for _, o := range s.pageOrder {
		if o.parentID == p.id {
			o.parentID = p.parentID
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// storageBody takes the storage value of a page write and checks it is
// well-formed; on failure it has answered 400, as Confluence does.
func storageBody(w http.ResponseWriter, pw *pageWrite) (string, bool) {
	body, err := pw.Body.storageValue()
	if err == nil {
		err = checkStorage(body)
	}
	if err != nil {
		writeV2Error(w, http.StatusBadRequest, err.Error())
		return "", false
	}
	return body, true
}
