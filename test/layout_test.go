package test

import (
	"os/exec"
	"strings"
	"testing"
)

const fakePkg = "retropub/confluence/confluencetest"

// The dependency direction of the README: confluence, credstore and config
// import none of our packages; only cmd/ assembles; nothing outside test/
// imports test/. Every package has a package comment.
//
// The fake Confluence (confluence/confluencetest) is test code: no
// production package imports it in the default build. With the demo build
// tag exactly one package may, cmd/worker (its demo.go), and the production
// worker (default tags, as make build and the Dockerfile build it) links
// neither the fake, nor miniredis, nor the demo's preview.
func TestLayout(t *testing.T) {
	leaf := map[string]bool{"retropub/confluence": true, "retropub/credstore": true, "retropub/config": true}
	for pkg, p := range listPackages(t) {
		if p.doc == "" {
			t.Errorf("%s has no package comment", pkg)
		}
		for _, imp := range p.imports {
			if !strings.HasPrefix(imp, "retropub/") {
				continue
			}
			if leaf[pkg] {
				t.Errorf("%s must not import %s", pkg, imp)
			}
			testCode := strings.HasPrefix(pkg, "retropub/test") || pkg == fakePkg
			if strings.HasPrefix(imp, "retropub/test") && !testCode {
				t.Errorf("%s imports test code %s", pkg, imp)
			}
			if imp == fakePkg && !testCode {
				t.Errorf("production package %s imports the fake %s", pkg, imp)
			}
			if strings.HasPrefix(imp, "retropub/cmd/") {
				t.Errorf("%s imports a command %s", pkg, imp)
			}
		}
	}
	for pkg, p := range listPackages(t, "-tags", "demo") {
		for _, imp := range p.imports {
			if imp == fakePkg && pkg != "retropub/cmd/worker" && !strings.HasPrefix(pkg, "retropub/test") {
				t.Errorf("with -tags demo, %s imports the fake; only cmd/worker's demo may", pkg)
			}
		}
	}
	out, err := exec.Command("go", "list", "-deps", "retropub/cmd/worker").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == fakePkg || dep == "retropub/internal/preview" || strings.HasPrefix(dep, "github.com/alicebob/miniredis") {
			t.Errorf("the production worker links %s", dep)
		}
	}
}

type listed struct {
	doc     string
	imports []string
}

// listPackages is go list over the module: each package's comment and its
// non-test imports.
func listPackages(t *testing.T, flags ...string) map[string]listed {
	t.Helper()
	args := append([]string{"list"}, flags...)
	args = append(args, "-f", "{{.ImportPath}}|{{.Doc}}|{{join .Imports \",\"}}", "retropub/...")
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		t.Fatal(err)
	}
	pkgs := map[string]listed{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		parts := strings.SplitN(line, "|", 3)
		pkgs[parts[0]] = listed{doc: parts[1], imports: strings.Split(parts[2], ",")}
	}
	return pkgs
}
