package confluencetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Data Center REST v1: content, spaces, search and the current user
// (confluence-api.md §2.2–§2.6). Callers of the *JSON helpers hold s.mu.

// dcDuplicateTitle is v1's message for a taken title (docToolchain#435).
func dcDuplicateTitle(title, key string) string {
	return fmt.Sprintf("A page with this title already exists: A page already exists with the title %s in the space with key %s", title, key)
}

func dcNoContent(w http.ResponseWriter, id string) {
	writeV1Error(w, http.StatusNotFound, "com.atlassian.confluence.api.service.exceptions.NotFoundException: No content found with id: ContentId{id="+id+"}")
}

// dcDefaultExpand is what v1 content carries unless asked for more.
var dcDefaultExpand = []string{"space", "history", "version"}

func expandSet(q url.Values) map[string]bool {
	set := map[string]bool{}
	for _, e := range dcDefaultExpand {
		set[e] = true
	}
	for _, e := range splitList(q.Get("expand")) {
		set[e] = true
	}
	return set
}

func (s *Server) dcUserJSON(user string) map[string]any {
	return map[string]any{
		"type": "known", "username": user, "userKey": "ff8080817" + fmt.Sprintf("%x", user), "displayName": user,
		"profilePicture": map[string]any{"path": s.dc.contextPath + "/images/icons/profilepics/default.svg", "width": 48, "height": 48, "isDefault": true},
		"_links":         map[string]any{"self": s.dc.BaseURL() + "/rest/api/user?username=" + url.QueryEscape(user)},
	}
}

func (s *Server) dcCurrentUser(w http.ResponseWriter, c *call) {
	writeJSON(w, http.StatusOK, s.dcUserJSON(requestUser(c.r)))
}

func (s *Server) dcSpaceJSON(sp *space, expand map[string]bool) map[string]any {
	id, _ := strconv.ParseInt(sp.id, 10, 64) // v1 space ids are numbers
	out := map[string]any{
		"id": id, "key": sp.key, "name": sp.name, "type": "global", "status": "current",
		"_links":      map[string]any{"webui": "/display/" + sp.key, "self": s.dc.BaseURL() + "/rest/api/space/" + sp.key},
		"_expandable": map[string]any{"homepage": "/rest/api/content/" + sp.homepageID, "description": "", "metadata": ""},
	}
	if expand["homepage"] {
		if home := s.pages[sp.homepageID]; home != nil {
			out["homepage"] = s.dcContentJSON(home, map[string]bool{"version": true})
		}
	}
	return out
}

// dcContentJSON renders v1 content with the asked-for expansions.
func (s *Server) dcContentJSON(p *page, expand map[string]bool) map[string]any {
	sp := s.spaceByID(p.spaceID)
	base := s.dc.BaseURL()
	out := map[string]any{
		"id": p.id, "type": "page", "status": p.status, "title": p.title,
		"_links": map[string]any{
			"webui":  "/display/" + sp.key + "/" + url.PathEscape(strings.ReplaceAll(p.title, " ", "+")),
			"edit":   "/pages/resumedraft.action?draftId=" + p.id,
			"tinyui": "/x/" + p.id,
			"self":   base + "/rest/api/content/" + p.id,
		},
		"_expandable": map[string]any{"children": "/rest/api/content/" + p.id + "/child", "ancestors": "", "body": ""},
	}
	if expand["space"] {
		out["space"] = s.dcSpaceJSON(sp, nil)
	}
	if expand["history"] {
		out["history"] = map[string]any{"latest": true, "createdBy": s.dcUserJSON("admin"), "createdDate": p.createdAt.Format(timeLayout)}
	}
	if expand["version"] {
		out["version"] = map[string]any{"by": s.dcUserJSON("admin"), "when": p.modifiedAt.Format(timeLayout),
			"message": p.versionMessage, "number": p.version, "minorEdit": false}
	}
	if expand["ancestors"] {
		out["ancestors"] = s.dcAncestors(p)
	}
	if expand["body.storage"] {
		out["body"] = map[string]any{"storage": map[string]any{"value": p.body, "representation": "storage"}}
	}
	return out
}

// dcAncestors lists a page's ancestors from the top of the space down to
// its parent, as v1 does.
func (s *Server) dcAncestors(p *page) []any {
	var chain []any
	for id := p.parentID; id != ""; {
		a := s.pages[id]
		if a == nil {
			break
		}
		chain = append([]any{map[string]any{"id": a.id, "type": "page", "status": a.status, "title": a.title}}, chain...)
		id = a.parentID
	}
	if chain == nil {
		chain = []any{}
	}
	return chain
}

// dcPaging reads start and limit; v1 caps limits silently.
func dcPaging(q url.Values, def, cap int) (start, limit int, err error) {
	start, limit = 0, def
	if v := q.Get("start"); v != "" {
		if start, err = strconv.Atoi(v); err != nil || start < 0 {
			return 0, 0, fmt.Errorf("start must be a non-negative integer")
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 0 {
			return 0, 0, fmt.Errorf("limit must be a non-negative integer")
		}
	}
	return start, min(limit, cap), nil
}

// writeDCList answers a v1 list: offset pagination with _links.next
// relative to _links.base, which carries the context path.
func (s *Server) writeDCList(w http.ResponseWriter, r *http.Request, path string, start, limit int, items []any) {
	end := min(start+limit, len(items))
	from := min(start, end)
	base := s.dc.BaseURL()
	links := map[string]any{"base": base, "context": s.dc.contextPath, "self": base + path + "?" + r.URL.RawQuery}
	if end < len(items) {
		q := r.URL.Query()
		q.Set("start", strconv.Itoa(end))
		q.Set("limit", strconv.Itoa(limit))
		links["next"] = path + "?" + q.Encode()
	}
	results := items[from:end]
	if results == nil {
		results = []any{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": results, "start": from, "limit": limit, "size": len(results), "_links": links})
}

func (s *Server) dcGetSpaces(w http.ResponseWriter, c *call) {
	q := c.r.URL.Query()
	start, limit, err := dcPaging(q, 25, 500)
	if err != nil {
		writeV1Error(w, http.StatusBadRequest, err.Error())
		return
	}
	keys := map[string]bool{}
	for _, v := range q["spaceKey"] {
		keys[v] = true
	}
	expand := expandSet(q)
	s.mu.Lock()
	defer s.mu.Unlock()
	var items []any
	for _, sp := range s.spaces {
		if len(keys) > 0 && !keys[sp.key] || q.Get("type") != "" && q.Get("type") != "global" {
			continue
		}
		items = append(items, s.dcSpaceJSON(sp, expand))
	}
	s.writeDCList(w, c.r, "/rest/api/space", start, limit, items)
}

func (s *Server) dcGetSpace(w http.ResponseWriter, c *call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.spaceByKey(c.args["key"])
	if sp == nil {
		writeV1Error(w, http.StatusNotFound, "No space found with key : "+c.args["key"])
		return
	}
	writeJSON(w, http.StatusOK, s.dcSpaceJSON(sp, expandSet(c.r.URL.Query())))
}

// dcStatuses reads v1's status filter: default current; "any" is all.
func dcStatuses(q url.Values) map[string]bool {
	st := map[string]bool{}
	for _, v := range q["status"] {
		for _, x := range splitList(v) {
			st[x] = true
		}
	}
	if len(st) == 0 {
		st["current"] = true
	}
	return st
}

func (s *Server) dcGetContent(w http.ResponseWriter, c *call) {
	q := c.r.URL.Query()
	start, limit, err := dcPaging(q, 25, 200)
	if err != nil {
		writeV1Error(w, http.StatusBadRequest, err.Error())
		return
	}
	switch q.Get("type") {
	case "", "page":
	case "blogpost":
		s.writeDCList(w, c.r, "/rest/api/content", start, limit, nil) // the fake holds no blog posts
		return
	default:
		writeV1Error(w, http.StatusBadRequest, "Unsupported content type: "+q.Get("type"))
		return
	}
	statuses := dcStatuses(q)
	_, hasTitle := q["title"]
	spaceKey, title := q.Get("spaceKey"), q.Get("title")
	expand := expandSet(q)

	s.mu.Lock()
	defer s.mu.Unlock()
	var items []any
	for _, p := range s.pageOrder {
		sp := s.spaceByID(p.spaceID)
		switch {
		case spaceKey != "" && sp.key != spaceKey,
			hasTitle && p.title != title, // exact and case-sensitive, while uniqueness is not
			!statuses["any"] && !statuses[p.status]:
			continue
		}
		items = append(items, s.dcContentJSON(p, expand))
	}
	s.writeDCList(w, c.r, "/rest/api/content", start, limit, items)
}

func (s *Server) dcGetContentByID(w http.ResponseWriter, c *call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pages[c.args["id"]]
	if p == nil || p.status == "trashed" {
		dcNoContent(w, c.args["id"])
		return
	}
	writeJSON(w, http.StatusOK, s.dcContentJSON(p, expandSet(c.r.URL.Query())))
}

func (s *Server) dcSearch(w http.ResponseWriter, c *call) {
	q := c.r.URL.Query()
	clauses, err := parseCQL(q.Get("cql"))
	if err != nil {
		writeV1Error(w, http.StatusBadRequest,
			"com.atlassian.confluence.api.service.exceptions.BadRequestException: Could not parse cql : "+q.Get("cql"))
		return
	}
	start, limit, err := dcPaging(q, 25, 100)
	if err != nil {
		writeV1Error(w, http.StatusBadRequest, err.Error())
		return
	}
	expand := expandSet(q)
	s.mu.Lock()
	defer s.mu.Unlock()
	var items []any
	for _, p := range s.pageOrder {
		ok := p.status == "current"
		for _, cl := range clauses {
			ok = ok && cl.matches(s, p)
		}
		if ok {
			items = append(items, s.dcContentJSON(p, expand))
		}
	}
	s.writeDCList(w, c.r, "/rest/api/content/search", start, limit, items)
}

// dcWrite is the body of a v1 create or update.
type dcWrite struct {
	ID     *string `json:"id"`
	Type   *string `json:"type"`
	Title  *string `json:"title"`
	Status *string `json:"status"`
	Space  *struct {
		Key string `json:"key"`
	} `json:"space"`
	Ancestors []struct {
		ID string `json:"id"`
	} `json:"ancestors"`
	Body    *bodyWrite `json:"body"`
	Version *struct {
		Number  *int   `json:"number"`
		Message string `json:"message"`
	} `json:"version"`
}

// decodeDCWrite parses and checks what create and update share; on
// failure it has answered.
func decodeDCWrite(w http.ResponseWriter, c *call) (*dcWrite, string, bool) {
	var in dcWrite
	if err := json.NewDecoder(bytes.NewReader(c.body)).Decode(&in); err != nil {
		writeV1Error(w, http.StatusBadRequest, "Unrecognized JSON body: "+err.Error())
		return nil, "", false
	}
	if in.Type == nil || *in.Type != "page" {
		writeV1Error(w, http.StatusBadRequest, "The fake supports content of type page only; a type is required")
		return nil, "", false
	}
	if in.Status != nil && *in.Status != "current" {
		writeV1Error(w, http.StatusBadRequest, "The fake supports status current only")
		return nil, "", false
	}
	if in.Title == nil || strings.TrimSpace(*in.Title) == "" {
		writeV1Error(w, http.StatusBadRequest, "Title is required")
		return nil, "", false
	}
	if len([]rune(strings.TrimSpace(*in.Title))) > 255 {
		writeV1Error(w, http.StatusBadRequest, "Title cannot exceed 255 characters")
		return nil, "", false
	}
	if in.Body != nil && in.Body.Storage == nil {
		writeV1Error(w, http.StatusBadRequest, "Content body must be given as body.storage")
		return nil, "", false
	}
	body, err := in.Body.storageValue()
	if err == nil {
		err = checkStorage(body)
	}
	if err != nil {
		writeV1Error(w, http.StatusBadRequest, err.Error())
		return nil, "", false
	}
	return &in, body, true
}

// dcParent returns the page named by the last ancestor (v1 honours only
// one), checked to be a current page of the space. Callers hold s.mu.
func (s *Server) dcParent(w http.ResponseWriter, in *dcWrite, sp *space) (*page, bool) {
	id := in.Ancestors[len(in.Ancestors)-1].ID
	parent := s.pages[id]
	if parent == nil || parent.status != "current" || parent.spaceID != sp.id {
		dcNoContent(w, id)
		return nil, false
	}
	return parent, true
}

func (s *Server) dcCreateContent(w http.ResponseWriter, c *call) {
	in, body, ok := decodeDCWrite(w, c)
	if !ok {
		return
	}
	if in.Space == nil || in.Space.Key == "" {
		writeV1Error(w, http.StatusBadRequest, "Could not create content: a space key is required")
		return
	}
	title := strings.TrimSpace(*in.Title) // Confluence stores titles trimmed
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.spaceByKey(in.Space.Key)
	if sp == nil {
		writeV1Error(w, http.StatusForbidden, "No space with key : "+in.Space.Key+" or no permission to create content in it")
		return
	}
	// Without ancestors v1 puts the page at the top of the space, not
	// below its home page.
	parentID := ""
	if len(in.Ancestors) > 0 {
		parent, ok := s.dcParent(w, in, sp)
		if !ok {
			return
		}
		parentID = parent.id
	}
	if s.titleTaken(sp.id, title, "") {
		writeV1Error(w, http.StatusBadRequest, dcDuplicateTitle(title, sp.key))
		return
	}
	now := s.clock()
	p := &page{id: s.newID(), spaceID: sp.id, parentID: parentID, title: title, body: body,
		status: "current", version: 1, createdAt: now, modifiedAt: now}
	s.addPage(p)
	writeJSON(w, http.StatusOK, s.dcContentJSON(p, map[string]bool{"space": true, "history": true, "version": true, "body.storage": true}))
}

func (s *Server) dcUpdateContent(w http.ResponseWriter, c *call) {
	in, body, ok := decodeDCWrite(w, c)
	if !ok {
		return
	}
	if in.Version == nil || in.Version.Number == nil {
		writeV1Error(w, http.StatusBadRequest, "Must supply an incremented version when updating Content. No version supplied.")
		return
	}
	id := c.args["id"]
	if in.ID != nil && *in.ID != id {
		writeV1Error(w, http.StatusBadRequest, "Content id in the body does not match the id in the path")
		return
	}
	title := strings.TrimSpace(*in.Title)
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pages[id]
	if p == nil || p.status == "trashed" {
		dcNoContent(w, id)
		return
	}
	sp := s.spaceByID(p.spaceID)
	if in.Space != nil && in.Space.Key != sp.key {
		writeV1Error(w, http.StatusBadRequest, "Moving content to another space is not supported by the fake")
		return
	}
	if n := *in.Version.Number; n != p.version+1 {
		writeV1Error(w, http.StatusConflict, fmt.Sprintf("Version must be incremented on update. Current version is: %d", p.version))
		return
	}
	parentID := p.parentID
	if len(in.Ancestors) > 0 {
		parent, ok := s.dcParent(w, in, sp)
		if !ok {
			return
		}
		if s.isDescendant(parent.id, p.id) {
			writeV1Error(w, http.StatusBadRequest, "A page cannot be moved under itself or its descendants")
			return
		}
		parentID = parent.id
	}
	if s.titleTaken(p.spaceID, title, p.id) {
		writeV1Error(w, http.StatusBadRequest, dcDuplicateTitle(title, sp.key))
		return
	}
	if in.Body != nil {
		p.body = body
	}
	p.title, p.parentID = title, parentID
	p.version++
	p.versionMessage = in.Version.Message
	s.updates = append(s.updates, Update{PageID: p.id, Version: p.version, Message: p.versionMessage})
	p.modifiedAt = s.clock()
	writeJSON(w, http.StatusOK, s.dcContentJSON(p, map[string]bool{"space": true, "history": true, "version": true, "body.storage": true}))
}

func (s *Server) dcDeleteContent(w http.ResponseWriter, c *call) {
	if !s.DeletePage(c.args["id"]) {
		dcNoContent(w, c.args["id"])
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
