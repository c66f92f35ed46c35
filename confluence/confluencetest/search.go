package confluencetest

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"
)

// v1 current user and CQL search (confluence-api.md §2.6).

func (s *Server) currentUser(w http.ResponseWriter, _ *call) {
	writeJSON(w, http.StatusOK, map[string]any{
		"type": "known", "accountId": accountID, "accountType": "atlassian",
		"email": "publisher@example.com", "publicName": "Fake Publisher", "displayName": "Fake Publisher",
		"timeZone": "Etc/UTC",
		"_links":   map[string]any{"self": s.siteURL + v1Base + "/user?accountId=" + url.QueryEscape(accountID)},
	})
}

// cqlClause is one "field op value" term; clauses are ANDed.
type cqlClause struct {
	field, op, value string
}

// parseCQL understands the subset the publisher may use:
// type = page, space = KEY, title = "…", title ~ "…", id = N, joined by AND.
func parseCQL(cql string) ([]cqlClause, error) {
	toks, err := lexCQL(cql)
	if err != nil {
		return nil, err
	}
	var out []cqlClause
	for i := 0; ; {
		if i+3 > len(toks) {
			return nil, fmt.Errorf("unexpected end of query")
		}
		field, op, val := strings.ToLower(toks[i].text), toks[i+1].text, toks[i+2]
		if toks[i].quoted || val.op {
			return nil, fmt.Errorf("unexpected token %q", toks[i].text)
		}
		switch {
		case field == "type" && op == "=", field == "space" && op == "=", field == "space.key" && op == "=":
		case field == "title" && (op == "=" || op == "~"), field == "id" && op == "=":
		default:
			return nil, fmt.Errorf("unsupported clause %s %s", toks[i].text, op)
		}
		if field == "space.key" {
			field = "space"
		}
		out = append(out, cqlClause{field: field, op: op, value: val.text})
		i += 3
		if i == len(toks) {
			return out, nil
		}
		if toks[i].quoted || !strings.EqualFold(toks[i].text, "AND") {
			return nil, fmt.Errorf("expected AND, got %q", toks[i].text)
		}
		i++
	}
}

type cqlToken struct {
	text       string
	quoted, op bool
}

func lexCQL(s string) ([]cqlToken, error) {
	var toks []cqlToken
	rs := []rune(s)
	for i := 0; i < len(rs); {
		r := rs[i]
		switch {
		case unicode.IsSpace(r):
			i++
		case r == '=' || r == '~':
			toks = append(toks, cqlToken{text: string(r), op: true})
			i++
		case r == '!' && i+1 < len(rs) && (rs[i+1] == '=' || rs[i+1] == '~'):
			toks = append(toks, cqlToken{text: string(rs[i : i+2]), op: true})
			i += 2
		case r == '"' || r == '\'':
			var b strings.Builder
			j := i + 1
			for ; j < len(rs) && rs[j] != r; j++ {
				if rs[j] == '\\' && j+1 < len(rs) {
					j++
				}
				b.WriteRune(rs[j])
			}
			if j >= len(rs) {
				return nil, fmt.Errorf("unterminated string")
			}
			toks = append(toks, cqlToken{text: b.String(), quoted: true})
			i = j + 1
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '.' || r == '-' || r == '*':
			j := i
			for j < len(rs) && (unicode.IsLetter(rs[j]) || unicode.IsDigit(rs[j]) || strings.ContainsRune("_.-*", rs[j])) {
				j++
			}
			toks = append(toks, cqlToken{text: string(rs[i:j])})
			i = j
		default:
			return nil, fmt.Errorf("unexpected character %q", r)
		}
	}
	return toks, nil
}

// matches evaluates one clause against a page. Callers hold s.mu.
func (c cqlClause) matches(s *Server, p *page) bool {
	switch c.field {
	case "type":
		return c.value == "page"
	case "id":
		return p.id == c.value
	case "space":
		sp := s.spaceByID(p.spaceID)
		return sp != nil && sp.key == c.value
	case "title":
		if c.op == "=" {
			return strings.EqualFold(p.title, c.value)
		}
		// "~" is CONTAINS; a trailing wildcard adds nothing to a contains match.
		return strings.Contains(strings.ToLower(p.title), strings.ToLower(strings.TrimRight(c.value, "*")))
	}
	return false
}

func (s *Server) search(w http.ResponseWriter, c *call) {
	q := c.r.URL.Query()
	clauses, err := parseCQL(q.Get("cql"))
	if err != nil {
		writeV1Error(w, http.StatusBadRequest,
			"com.atlassian.confluence.api.service.exceptions.BadRequestException: Could not parse cql : "+q.Get("cql")+" ("+err.Error()+")")
		return
	}
	limit, start := 25, 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeV1Error(w, http.StatusBadRequest, "limit must be a non-negative integer")
			return
		}
		limit = min(n, 250)
	}
	if v := q.Get("cursor"); v != "" {
		raw, err := base64.RawURLEncoding.DecodeString(v)
		n, err2 := strconv.Atoi(strings.TrimPrefix(string(raw), "offset:"))
		if err != nil || err2 != nil || n < 0 {
			writeV1Error(w, http.StatusBadRequest, "invalid cursor")
			return
		}
		start = n
	}
	expand := map[string]bool{}
	for _, e := range splitList(q.Get("expand")) {
		expand[e] = true
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var matched []*page
	for _, p := range s.pageOrder {
		if p.status != "current" || s.spaceBlocked(p.spaceID) {
			continue
		}
		ok := true
		for _, cl := range clauses {
			ok = ok && cl.matches(s, p)
		}
		if ok {
			matched = append(matched, p)
		}
	}
	end := min(start+limit, len(matched))
	from := min(start, end)
	results := make([]any, 0, end-from)
	for _, p := range matched[from:end] {
		results = append(results, s.searchContentJSON(p, expand))
	}
	links := map[string]any{
		"base": s.siteURL + "/wiki", "context": "/wiki",
		"self": s.siteURL + v1Base + "/content/search?" + c.r.URL.RawQuery,
	}
	if end < len(matched) {
		nq := url.Values{"cql": {q.Get("cql")}, "limit": {strconv.Itoa(limit)},
			"cursor": {base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(end)))}}
		links["next"] = "/rest/api/content/search?" + nq.Encode()
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"results": results, "start": from, "limit": limit, "size": len(results), "_links": links,
	})
}

func (s *Server) searchContentJSON(p *page, expand map[string]bool) map[string]any {
	sp := s.spaceByID(p.spaceID)
	out := map[string]any{
		"id": p.id, "type": "page", "status": p.status, "title": p.title,
		"_links": map[string]any{
			"webui": "/spaces/" + sp.key + "/pages/" + p.id + "/" + url.PathEscape(strings.ReplaceAll(p.title, " ", "+")),
			"self":  s.siteURL + v1Base + "/content/" + p.id,
		},
	}
	if expand["space"] {
		out["space"] = map[string]any{"id": sp.id, "key": sp.key, "name": sp.name, "type": "global", "status": "current"}
	}
	if expand["version"] {
		out["version"] = map[string]any{"number": p.version, "when": p.modifiedAt.Format(timeLayout)}
	}
	return out
}
