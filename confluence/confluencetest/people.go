package confluencetest

// What people do in Confluence behind the publisher's back, for tests.

// AddPage creates a page as a person would (not through the API log).
// An empty parentID puts it below the space's home page.
func (s *Server) AddPage(spaceKey, parentID, title, body string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sp *space
	for _, x := range s.spaces {
		if x.key == spaceKey {
			sp = x
		}
	}
	if sp == nil {
		return ""
	}
	if parentID == "" {
		parentID = sp.homepageID
	}
	now := s.clock()
	p := &page{id: s.newID(), spaceID: sp.id, parentID: parentID, title: title, body: body,
		status: "current", version: 1, createdAt: now, modifiedAt: now}
	s.addPage(p)
	return p.id
}

// EditPage saves a new version of a page as a person would.
func (s *Server) EditPage(id, body string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pages[id]
	if p == nil || p.status != "current" {
		return false
	}
	p.body = body
	p.version++
	p.modifiedAt = s.clock()
	return true
}

// DeletePage moves a page to the trash as a person would.
func (s *Server) DeletePage(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pages[id]
	if p == nil || p.status != "current" {
		return false
	}
	p.status = "trashed"
	for _, o := range s.pageOrder {
		if o.parentID == p.id {
			o.parentID = p.parentID
		}
	}
	return true
}

// ArchivePage archives a page as a person would. An archived page keeps
// its place and its title: a create with that title is refused as taken,
// and GET /pages lists it unless the status filter leaves archived out
// (confluence-api.md §1.10).
func (s *Server) ArchivePage(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pages[id]
	if p == nil || p.status != "current" {
		return false
	}
	p.status = "archived"
	return true
}
