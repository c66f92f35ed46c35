package deploy_test

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"retropub/internal/testproc"
)

const composeFile = "docker-compose.sentinel.yml"

// operatorVars are what the Compose file's header tells an operator to set.
func operatorVars() map[string]string {
	key := make([]byte, 32)
	rand.Read(key)
	return map[string]string{
		"CREDSTORE_KEYS":     "k1:" + base64.StdEncoding.EncodeToString(key),
		"DASHBOARD_PASSWORD": "compose-test-password",
	}
}

// composeClient is `docker compose` when the plugin answers, else the
// stand-alone docker-compose; both check the file without an engine.
func composeClient(t *testing.T) []string {
	t.Helper()
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}
	}
	t.Skip("no Compose client (docker compose or docker-compose; .ci/run installs docker-compose)")
	return nil
}

func TestComposeConfig(t *testing.T) {
	client := composeClient(t)
	run := func(vars map[string]string) (string, error) {
		cmd := exec.Command(client[0], append(client[1:], "-f", composeFile, "config", "-q")...)
		cmd.Env = testproc.Env()
		for k, v := range vars {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run(operatorVars()); err != nil {
		t.Fatalf("compose config: %v\n%s", err, out)
	}
	// Without the password Compose refuses to start anything, naming it,
	// instead of starting workers that exit and restart forever.
	vars := operatorVars()
	delete(vars, "DASHBOARD_PASSWORD")
	out, err := run(vars)
	if err == nil || !strings.Contains(out, "DASHBOARD_PASSWORD") {
		t.Fatalf("compose config without DASHBOARD_PASSWORD: err %v, output:\n%s", err, out)
	}
}

// workerEnvironment is the worker service's environment as Compose
// interpolates it with vars set.
func workerEnvironment(t *testing.T, vars map[string]string) (map[string]string, error) {
	t.Helper()
	raw, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Services map[string]struct {
			Environment map[string]string
		}
	}
	if err := yaml.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	w, ok := file.Services["worker"]
	if !ok || len(w.Environment) == 0 {
		t.Fatal("no worker service with an environment map")
	}
	env := map[string]string{}
	for k, v := range w.Environment {
		if env[k], err = interpolate(v, vars); err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
	}
	return env, nil
}

var reference = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}`)

// interpolate does Compose's ${VAR}, ${VAR:-default}, ${VAR-default},
// ${VAR:?error}, ${VAR?error} and $$.
func interpolate(s string, vars map[string]string) (string, error) {
	var err error
	out := reference.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		g := reference.FindStringSubmatch(m)
		name, op, arg := g[1], g[2], g[3]
		v, set := vars[name]
		empty := !set || v == ""
		switch {
		case op == ":-" && empty, op == "-" && !set:
			return arg
		case op == ":?" && empty, op == "?" && !set:
			err = fmt.Errorf("required variable %s is missing: %s", name, arg)
		}
		return v
	})
	return out, err
}

func TestInterpolate(t *testing.T) {
	vars := map[string]string{"A": "a", "E": ""}
	for in, want := range map[string]string{
		"${A}": "a", "${B:-d}": "d", "${E:-d}": "d", "${E-d}": "", "x$$y": "x$y", "${A:?m}": "a",
	} {
		if got, err := interpolate(in, vars); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"${E:?m}", "${B?m}"} {
		if _, err := interpolate(in, vars); err == nil {
			t.Errorf("%s: no error", in)
		}
	}
}

// A worker started with exactly the Compose file's environment (the
// Sentinel pointed at a loopback Redis instead) becomes ready and stays up.
func TestWorkerStartsWithComposeEnvironment(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the worker")
	}
	t.Parallel()
	if _, err := workerEnvironment(t, map[string]string{"CREDSTORE_KEYS": "k1:x"}); err == nil || !strings.Contains(err.Error(), "DASHBOARD_PASSWORD") {
		t.Fatalf("the Compose file lets a worker start without DASHBOARD_PASSWORD (it would exit and restart forever): %v", err)
	}
	env, err := workerEnvironment(t, operatorVars())
	if err != nil {
		t.Fatal(err)
	}
	// Loopback instead of the Sentinel: same password and database.
	delete(env, "REDIS_SENTINEL_ADDRS")
	delete(env, "REDIS_SENTINEL_MASTER")
	u, err := url.Parse(env["REDIS_URL"])
	if err != nil {
		t.Fatalf("REDIS_URL: %v", err)
	}
	password, _ := u.User.Password()
	u.Host = testproc.Redis(t, password)
	env["REDIS_URL"] = u.String()
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testproc.FreePort(t))
	env["HTTP_ADDR"] = httpAddr

	bin := testproc.Build(t, "worker")
	cmd := exec.Command(bin)
	var list []string
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	sort.Strings(list)
	cmd.Env = list // nothing else: no PATH, no HOME, as in the container
	logs := &testproc.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var exitErr error
	exited := make(chan struct{})
	go func() { exitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	get := func(path string, login bool) int {
		req, _ := http.NewRequest("GET", "http://"+httpAddr+path, nil)
		if login {
			req.SetBasicAuth(env["DASHBOARD_USER"], env["DASHBOARD_PASSWORD"])
		}
		resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	ready := false
	for deadline := time.Now().Add(30 * time.Second); !ready && time.Now().Before(deadline); {
		select {
		case <-exited:
			t.Fatalf("worker exited at start: %v\n%s", exitErr, logs)
		case <-time.After(100 * time.Millisecond):
			ready = get("/readyz", false) == http.StatusOK
		}
	}
	if !ready {
		t.Fatalf("worker not ready after 30s\n%s", logs)
	}
	// Still up a while later (a restart loop exits within a second).
	select {
	case <-exited:
		t.Fatalf("worker exited: %v\n%s", exitErr, logs)
	case <-time.After(3 * time.Second):
	}
	if code := get("/dashboard/", true); code != http.StatusOK {
		t.Errorf("/dashboard/ with the Compose login: %d, want 200", code)
	}
	if code := get("/dashboard/", false); code != http.StatusUnauthorized {
		t.Errorf("/dashboard/ without login: %d, want 401", code)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		if exitErr != nil {
			t.Errorf("worker exit after SIGTERM: %v\n%s", exitErr, logs)
		}
	case <-time.After(45 * time.Second):
		t.Errorf("worker still running 45s after SIGTERM\n%s", logs)
	}
}
