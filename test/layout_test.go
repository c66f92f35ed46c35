package test

import (
	"os/exec"
	"strings"
	"testing"
)

// The dependency direction of the README: confluence, credstore and config
// import none of our packages; only cmd/ assembles; nothing imports test/
// but the demo and the tests. Every package has a package comment.
func TestLayout(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}|{{.Doc}}|{{join .Imports \",\"}}", "retropub/...").Output()
	if err != nil {
		t.Fatal(err)
	}
	leaf := map[string]bool{"retropub/confluence": true, "retropub/credstore": true, "retropub/config": true}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		parts := strings.SplitN(line, "|", 3)
		pkg, doc, imports := parts[0], parts[1], strings.Split(parts[2], ",")
		if doc == "" {
			t.Errorf("%s has no package comment", pkg)
		}
		for _, imp := range imports {
			if !strings.HasPrefix(imp, "retropub/") {
				continue
			}
			if leaf[pkg] {
				t.Errorf("%s must not import %s", pkg, imp)
			}
			if strings.HasPrefix(imp, "retropub/test") && pkg != "retropub/cmd/worker" && !strings.HasPrefix(pkg, "retropub/test") {
				t.Errorf("%s imports test code %s", pkg, imp)
			}
			if strings.HasPrefix(imp, "retropub/cmd/") {
				t.Errorf("%s imports a command %s", pkg, imp)
			}
		}
	}
}
