package confluencetest

import (
	"encoding/json"
	"net/http"
)

// App access rules (data security policies). An organization admin can
// block apps from chosen spaces: the space still lists (its key and name
// are never blocked), but the app can neither read nor write the objects
// in it — pages, attachments, their versions — while API-token traffic is
// not affected (Atlassian: "Data security policy developer guide",
// developer.atlassian.com/cloud/confluence/data-security-policy-developer-guide;
// "App Access for Confluence Cloud REST APIs",
// confluence.atlassian.com/display/AAR/App+Access+for+Confluence+Cloud+REST+APIs).
//
// Atlassian documents which operations are blocked ("Not exempt from app
// access rules"), not the exact answer. The fake models it as Confluence
// answers content it will not show: list and search results leave the
// blocked space's content out, and an operation on an object in the space
// — a page create, update or delete, an attachment call — is refused 403
// with a message that names the policy.

// BlockedMessage is what a refused operation in a blocked space says.
const BlockedMessage = "This app is blocked from accessing content in this space by an app access rule of a data security policy."

// BlockSpace puts the space under an app access rule that blocks the app.
func (s *Server) BlockSpace(key string) { s.setBlocked(key, true) }

// UnblockSpace lifts the rule.
func (s *Server) UnblockSpace(key string) { s.setBlocked(key, false) }

func (s *Server) setBlocked(key string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sp := s.spaceByKey(key); sp != nil {
		if s.blocked == nil {
			s.blocked = map[string]bool{}
		}
		s.blocked[sp.id] = on
	}
}

// BlockedRefusals counts operations refused because of a blocked space.
func (s *Server) BlockedRefusals() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.blockedRefusals
}

// spaceBlocked: callers hold s.mu.
func (s *Server) spaceBlocked(spaceID string) bool { return s.blocked[spaceID] }

// refuseBlocked answers 403 for an operation on an object in a blocked
// space and reports whether it did. Space metadata stays readable.
func (s *Server) refuseBlocked(w http.ResponseWriter, c *call, rt resolved) bool {
	s.mu.Lock()
	spaceID := ""
	switch {
	case rt.route.pattern == "/wiki/api/v2/pages" && c.r.Method == http.MethodPost:
		var b struct {
			SpaceID string `json:"spaceId"`
		}
		_ = json.Unmarshal(c.body, &b)
		spaceID = b.SpaceID
	case c.args["id"] != "":
		if p := s.pages[c.args["id"]]; p != nil {
			spaceID = p.spaceID
		}
	}
	refused := spaceID != "" && s.spaceBlocked(spaceID)
	if refused {
		s.blockedRefusals++
	}
	s.mu.Unlock()
	if !refused {
		return false
	}
	if rt.route.pattern == "/wiki/api/v2/pages" || rt.route.pattern == "/wiki/api/v2/pages/{id}" {
		writeV2Error(w, http.StatusForbidden, BlockedMessage)
	} else {
		writeV1Error(w, http.StatusForbidden, BlockedMessage)
	}
	return true
}
