package confluence

import "strings"

// route is one allowed call: a method and a path pattern in which "*" is
// exactly one path segment of digits or an attachment id.
type route struct {
	method  string
	pattern string
}

// cloudRoutes are the only Cloud calls of DESIGN §4 (relative to
// /ex/confluence/{cloudId}). Anything else is refused before the network.
var cloudRoutes = []route{
	{"GET", "/wiki/api/v2/spaces"},
	{"GET", "/wiki/api/v2/pages"},
	{"POST", "/wiki/api/v2/pages"},
	{"PUT", "/wiki/api/v2/pages/*"},
	{"DELETE", "/wiki/api/v2/pages/*"},
	{"GET", "/wiki/rest/api/user/current"},
	{"GET", "/wiki/rest/api/content/*/child/attachment"},
	{"POST", "/wiki/rest/api/content/*/child/attachment"},
	{"POST", "/wiki/rest/api/content/*/child/attachment/*/data"},
	{"GET", "/wiki/rest/api/content/search"},
}

// serverRoutes are the only Server/Data Center calls of DESIGN §4
// (relative to the base URL, which keeps its context path).
var serverRoutes = []route{
	{"GET", "/rest/api/user/current"},
	{"GET", "/rest/api/space"},
	{"GET", "/rest/api/content"},
	{"POST", "/rest/api/content"},
	{"PUT", "/rest/api/content/*"},
	{"DELETE", "/rest/api/content/*"},
	{"GET", "/rest/api/content/*/child/attachment"},
	{"POST", "/rest/api/content/*/child/attachment"},
	{"POST", "/rest/api/content/*/child/attachment/*/data"},
	{"GET", "/rest/api/content/search"},
}

// allowed returns the matching route pattern (a low-cardinality name for
// metrics) and whether the call is allowed at all.
func allowed(routes []route, method, path string) (string, bool) {
	for _, r := range routes {
		if r.method == method && matchPath(r.pattern, path) {
			return r.pattern, true
		}
	}
	return "", false
}

func matchPath(pattern, path string) bool {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return false
	}
	for i := range ps {
		if ps[i] == "*" {
			if !isID(xs[i]) {
				return false
			}
			continue
		}
		if ps[i] != xs[i] {
			return false
		}
	}
	return true
}

// isID accepts Confluence ids: digits, optionally prefixed "att".
func isID(s string) bool {
	s = strings.TrimPrefix(s, "att")
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
