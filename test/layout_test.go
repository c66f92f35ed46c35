package test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

const fakePkg = "retropub/confluence/confluencetest"

// The dependency direction of the README: confluence, credstore and config
// import none of our packages but the dependency-free helpers in
// internal/; only cmd/ assembles; nothing outside test/
// imports test/. Every package has a package comment.
//
// The fake Confluence (confluence/confluencetest) is test code: no
// production package imports it, except cmd/worker's demo.go (worker demo,
// a documented command). The production image builds the worker with
// -tags nodemo: then no package imports the fake, and the worker links
// neither the fake, nor miniredis, nor the demo's preview.
func TestLayout(t *testing.T) {
	leaf := map[string]bool{"retropub/confluence": true, "retropub/credstore": true, "retropub/config": true}
	pkgs := listPackages(t)
	// helper: an internal/ package that imports none of ours (rediskeys,
	// redislock, randhex); the leaf packages may use those.
	helper := func(imp string) bool {
		if !strings.HasPrefix(imp, "retropub/internal/") {
			return false
		}
		for _, i := range pkgs[imp].imports {
			if strings.HasPrefix(i, "retropub/") {
				return false
			}
		}
		return true
	}
	for pkg, p := range pkgs {
		if p.doc == "" && !p.testOnly {
			t.Errorf("%s has no package comment", pkg)
		}
		for _, imp := range p.imports {
			if !strings.HasPrefix(imp, "retropub/") {
				continue
			}
			if leaf[pkg] && !helper(imp) {
				t.Errorf("%s must not import %s", pkg, imp)
			}
			testCode := strings.HasPrefix(pkg, "retropub/test") || pkg == fakePkg
			if strings.HasPrefix(imp, "retropub/test") && !testCode {
				t.Errorf("%s imports test code %s", pkg, imp)
			}
			if imp == fakePkg && !testCode && pkg != "retropub/cmd/worker" {
				t.Errorf("production package %s imports the fake %s", pkg, imp)
			}
			if strings.HasPrefix(imp, "retropub/cmd/") {
				t.Errorf("%s imports a command %s", pkg, imp)
			}
		}
	}
	for pkg, p := range listPackages(t, "-tags", "nodemo") {
		for _, imp := range p.imports {
			if imp == fakePkg && !strings.HasPrefix(pkg, "retropub/test") && pkg != fakePkg {
				t.Errorf("with -tags nodemo, %s imports the fake", pkg)
			}
		}
	}
	out, err := exec.Command("go", "list", "-deps", "-tags", "nodemo", "retropub/cmd/worker").Output()
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
	doc      string
	imports  []string
	testOnly bool // a folder of tests only (deploy/): no package to document
}

// listPackages is go list over the module: each package's comment and its
// non-test imports.
func listPackages(t *testing.T, flags ...string) map[string]listed {
	t.Helper()
	args := append([]string{"list"}, flags...)
	args = append(args, "-f", "{{.ImportPath}}|{{len .GoFiles}}|{{.Doc}}|{{join .Imports \",\"}}", "retropub/...")
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		t.Fatal(err)
	}
	pkgs := map[string]listed{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		parts := strings.SplitN(line, "|", 4)
		pkgs[parts[0]] = listed{doc: parts[2], imports: strings.Split(parts[3], ","), testOnly: parts[1] == "0"}
	}
	return pkgs
}

// confluence keeps its flavours as types (issue 15 item 3): Cloud and Data
// Center are two implementations of one interface chosen at construction,
// so no method body asks which flavour it is on. This fails on a bool or
// string field naming a flavour, a condition reading one, a condition on
// the instance name's "cloud:"/"server:" prefix, or a type assertion or
// switch on the flavour types.
func TestConfluenceHasNoFlavourBranches(t *testing.T) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, "../confluence", func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	flavourWord := regexp.MustCompile(`(?i)^(is)?(server|cloud|dc|datacenter|flavou?r)$`)
	flavourType := map[string]bool{"cloud": true, "dataCenter": true}
	mentionsFlavour := func(n ast.Node) (what string) {
		ast.Inspect(n, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.SelectorExpr:
				if flavourWord.MatchString(x.Sel.Name) {
					what = "reads ." + x.Sel.Name
				}
			case *ast.Ident:
				if flavourWord.MatchString(x.Name) && x.Obj != nil && x.Obj.Kind == ast.Var {
					what = "reads " + x.Name
				}
			case *ast.BasicLit:
				if x.Kind == token.STRING && (strings.Contains(x.Value, `cloud:`) || strings.Contains(x.Value, `server:`)) {
					what = "compares the instance name " + x.Value
				}
			}
			return what == ""
		})
		return what
	}
	for _, pkg := range pkgs {
		for _, f := range pkg.Files {
			ast.Inspect(f, func(n ast.Node) bool {
				pos := func() string { return fset.Position(n.Pos()).String() }
				switch x := n.(type) {
				case *ast.Field:
					if id, ok := x.Type.(*ast.Ident); ok && (id.Name == "bool" || id.Name == "string") {
						for _, fn := range x.Names {
							if flavourWord.MatchString(fn.Name) {
								t.Errorf("%s: field %s %s names a flavour: make the difference a type", pos(), fn.Name, id.Name)
							}
						}
					}
				case *ast.IfStmt:
					if w := mentionsFlavour(x.Cond); w != "" {
						t.Errorf("%s: if %s: a flavour branch in a method body", pos(), w)
					}
				case *ast.SwitchStmt:
					if x.Tag != nil {
						if w := mentionsFlavour(x.Tag); w != "" {
							t.Errorf("%s: switch %s: a flavour branch", pos(), w)
						}
					}
					for _, s := range x.Body.List {
						for _, e := range s.(*ast.CaseClause).List {
							if w := mentionsFlavour(e); w != "" {
								t.Errorf("%s: case %s: a flavour branch", pos(), w)
							}
						}
					}
				case *ast.TypeAssertExpr:
					typ := x.Type
					if st, ok := typ.(*ast.StarExpr); ok {
						typ = st.X
					}
					if id, ok := typ.(*ast.Ident); ok && flavourType[id.Name] {
						t.Errorf("%s: type assertion to %s: a flavour branch", pos(), id.Name)
					}
				case *ast.CaseClause:
					for _, e := range x.List {
						if st, ok := e.(*ast.StarExpr); ok {
							e = st.X
						}
						if id, ok := e.(*ast.Ident); ok && flavourType[id.Name] {
							t.Errorf("%s: type switch case %s: a flavour branch", pos(), id.Name)
						}
					}
				}
				return true
			})
		}
	}
}
