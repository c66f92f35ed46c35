//go:build ignore

// genschemas writes the JSON schemas kubeconform validates
// deploy/kubernetes/*.yaml against, offline: from the OpenAPI v3 documents
// that ship in the Kubernetes module (api/openapi-spec/v3), fetched through
// the Go module proxy. Each schema is the kind's definition plus every
// definition it reaches, descriptions dropped, and additionalProperties
// false on every object with fixed fields (kubeconform's -strict: a
// misspelt field fails).
//
//	go run deploy/kubernetes/testdata/genschemas.go
package main

import (
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

const module = "k8s.io/kubernetes@v1.34.2"

// kinds are the resources deploy/kubernetes uses: OpenAPI document,
// definition, and kubeconform's file name ({{.ResourceKind}}{{.KindSuffix}}).
var kinds = []struct{ doc, def, file, apiVersion, kind string }{
	{"api__v1_openapi.json", "io.k8s.api.core.v1.Secret", "secret-v1", "v1", "Secret"},
	{"api__v1_openapi.json", "io.k8s.api.core.v1.Service", "service-v1", "v1", "Service"},
	{"apis__apps__v1_openapi.json", "io.k8s.api.apps.v1.Deployment", "deployment-apps-v1", "apps/v1", "Deployment"},
	{"apis__policy__v1_openapi.json", "io.k8s.api.policy.v1.PodDisruptionBudget", "poddisruptionbudget-policy-v1", "policy/v1", "PodDisruptionBudget"},
}

func main() {
	out, err := exec.Command("go", "mod", "download", "-json", module).Output()
	if err != nil {
		log.Fatalf("go mod download %s: %v", module, err)
	}
	var dl struct{ Dir string }
	if err := json.Unmarshal(out, &dl); err != nil {
		log.Fatal(err)
	}
	dir := filepath.Join("deploy", "kubernetes", "testdata", "schemas")
	for _, k := range kinds {
		raw, err := os.ReadFile(filepath.Join(dl.Dir, "api", "openapi-spec", "v3", k.doc))
		if err != nil {
			log.Fatal(err)
		}
		var doc struct {
			Components struct{ Schemas map[string]any } `json:"components"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			log.Fatal(err)
		}
		defs := map[string]any{}
		reach(doc.Components.Schemas, k.def, defs)
		schema := map[string]any{
			"$ref":       "#/components/schemas/" + k.def,
			"components": map[string]any{"schemas": defs},
		}
		root := defs[k.def].(map[string]any)["properties"].(map[string]any)
		root["apiVersion"] = map[string]any{"enum": []string{k.apiVersion}}
		root["kind"] = map[string]any{"enum": []string{k.kind}}
		b, err := json.MarshalIndent(schema, "", " ")
		if err != nil {
			log.Fatal(err)
		}
		path := filepath.Join(dir, k.file+".json")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			log.Fatal(err)
		}
		fmt.Println(path, len(defs), "definitions")
	}
}

// reach copies name and every definition it refers to into into, made strict.
func reach(all map[string]any, name string, into map[string]any) {
	if _, done := into[name]; done {
		return
	}
	def, ok := all[name]
	if !ok {
		log.Fatalf("no definition %s", name)
	}
	into[name] = def
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			delete(v, "description")
			if _, has := v["properties"]; has {
				if _, set := v["additionalProperties"]; !set {
					v["additionalProperties"] = false
				}
			}
			if ref, ok := v["$ref"].(string); ok {
				reach(all, strings.TrimPrefix(ref, "#/components/schemas/"), into)
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(def)
}
