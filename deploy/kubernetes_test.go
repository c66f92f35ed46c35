// Package deploy_test checks the deployment examples in deploy/: the
// Kubernetes manifests against the Kubernetes schemas, the Compose file
// with a Compose client, and that a worker started with the Compose file's
// environment stays up.
package deploy_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// schemaLocation is kubeconform's template for the vendored schemas
// (kubernetes/testdata/genschemas.go writes them; kubeconform cannot fetch
// its own here).
const schemaLocation = "kubernetes/testdata/schemas/{{.ResourceKind}}{{.KindSuffix}}.json"

func kubeconform(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("kubeconform"); err == nil {
		return p
	}
	if gopath, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "kubeconform")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("kubeconform not installed (go install github.com/yannh/kubeconform/cmd/kubeconform@v0.8.0; .ci/run does)")
	return ""
}

func validate(t *testing.T, files ...string) (string, error) {
	args := append([]string{"-strict", "-summary", "-schema-location", schemaLocation}, files...)
	out, err := exec.Command(kubeconform(t), args...).CombinedOutput()
	return string(out), err
}

func TestKubernetesManifestsValidate(t *testing.T) {
	files, _ := filepath.Glob("kubernetes/*.yaml")
	if len(files) == 0 {
		t.Fatal("no manifests in deploy/kubernetes")
	}
	out, err := validate(t, files...)
	if err != nil {
		t.Fatalf("kubeconform: %v\n%s", err, out)
	}
	// Every resource had a schema: a kind without one would be "Skipped".
	if !strings.Contains(out, "Invalid: 0, Errors: 0, Skipped: 0") {
		t.Fatalf("kubeconform did not check every resource:\n%s", out)
	}
}

// The validator is strict: a misspelt field and a wrong type fail.
func TestKubernetesValidatorRejectsBadManifest(t *testing.T) {
	good, err := os.ReadFile("kubernetes/worker.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string][2]string{
		"misspelt field": {"runAsNonRoot: true", "runAsNonroot: true"},
		"wrong type":     {"replicas: 3", `replicas: "3"`},
	} {
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		if !bytes.Contains(good, []byte(edit[0])) {
			t.Fatalf("%s: %q not in worker.yaml", name, edit[0])
		}
		os.WriteFile(bad, bytes.Replace(good, []byte(edit[0]), []byte(edit[1]), 1), 0o644)
		if out, err := validate(t, bad); err == nil {
			t.Errorf("%s: kubeconform accepted it:\n%s", name, out)
		}
	}
}

// kubelet refuses runAsNonRoot with the image's non-numeric USER
// ("nonroot") unless the pod names a numeric user.
func TestKubernetesPodRunsAsNumericUser(t *testing.T) {
	f, err := os.Open("kubernetes/worker.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	found := false
	for {
		var doc struct {
			Kind string
			Spec struct {
				Template struct {
					Spec struct {
						SecurityContext struct {
							RunAsNonRoot *bool `yaml:"runAsNonRoot"`
							RunAsUser    *int  `yaml:"runAsUser"`
						} `yaml:"securityContext"`
					}
				}
			}
		}
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if doc.Kind != "Deployment" {
			continue
		}
		found = true
		sc := doc.Spec.Template.Spec.SecurityContext
		if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			t.Error("runAsNonRoot is not true")
		}
		if sc.RunAsUser == nil || *sc.RunAsUser == 0 {
			t.Fatal("runAsNonRoot without a numeric non-zero runAsUser: kubelet refuses the pod (image has non-numeric user)")
		}
		if *sc.RunAsUser != 65532 {
			t.Errorf("runAsUser %d, want 65532 (distroless nonroot)", *sc.RunAsUser)
		}
	}
	if !found {
		t.Fatal("no Deployment in worker.yaml")
	}
	dockerfile, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^USER 65532:65532$`).Match(dockerfile) {
		t.Error("Dockerfile: USER is not the numeric 65532:65532 (runtimes check runAsNonRoot against a number)")
	}
}
