package confluencetest

import (
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"
)

// The fake must not invent endpoints or request fields: check them against
// Atlassian's OpenAPI document, vendored in testdata/ (see its README).

const v2SpecPath = "testdata/confluence-cloud-rest-v2.openapi.json"

type openAPI struct {
	Paths      map[string]map[string]json.RawMessage
	Components struct {
		RequestBodies map[string]struct {
			Content map[string]struct{ Schema schema }
		} `json:"requestBodies"`
		Schemas map[string]schema
	}
}

type schema struct {
	Ref        string `json:"$ref"`
	Properties map[string]schema
	OneOf      []schema `json:"oneOf"`
	Required   []string
}

func loadSpec(t *testing.T) *openAPI {
	t.Helper()
	data, err := os.ReadFile(v2SpecPath)
	if err != nil {
		t.Fatalf("the vendored v2 OpenAPI document is missing: %v", err)
	}
	var doc openAPI
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	return &doc
}

func TestV2RoutesExistInSpec(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	for _, r := range gatewayRoutes {
		p, ok := strings.CutPrefix(r.pattern, "/wiki/api/v2")
		if !ok {
			continue
		}
		ops, ok := doc.Paths[p]
		if !ok {
			t.Errorf("%s %s: path not in the v2 spec", r.method, r.pattern)
			continue
		}
		if _, ok := ops[strings.ToLower(r.method)]; !ok {
			t.Errorf("%s %s: method not in the v2 spec", r.method, r.pattern)
		}
	}
}

// resolve follows $ref within the document.
func (doc *openAPI) resolve(s schema) schema {
	for s.Ref != "" {
		s = doc.Components.Schemas[strings.TrimPrefix(s.Ref, "#/components/schemas/")]
	}
	return s
}

// checkProps reports properties of v that the schema does not define.
func (doc *openAPI) checkProps(t *testing.T, where string, s schema, v any) {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	s = doc.resolve(s)
	props := map[string]schema{}
	for k, p := range s.Properties {
		props[k] = p
	}
	for _, alt := range s.OneOf { // a value may use any alternative's properties
		for k, p := range doc.resolve(alt).Properties {
			props[k] = p
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p, ok := props[k]
		if !ok {
			t.Errorf("%s: property %q is not in the spec", where, k)
			continue
		}
		doc.checkProps(t, where+"."+k, p, m[k])
	}
	for _, req := range s.Required {
		if _, ok := m[req]; !ok {
			t.Errorf("%s: required property %q missing", where, req)
		}
	}
}

func TestRequestBodiesMatchSpec(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	body := func(name string) schema {
		return doc.Components.RequestBodies[name].Content["application/json"].Schema
	}
	doc.checkProps(t, "PageCreateRequest", body("PageCreateRequest"), createReq("1", "T", "2", "<p/>"))
	doc.checkProps(t, "PageUpdateRequest", body("PageUpdateRequest"), updateReq("1", "T", "2", "<p/>", 2))
	nested := map[string]any{"spaceId": "1", "title": "Nested",
		"body": map[string]any{"storage": map[string]any{"representation": "storage", "value": "<p>n</p>"}}}
	doc.checkProps(t, "PageCreateRequest(nested)", body("PageCreateRequest"), nested)
}
