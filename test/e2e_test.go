package test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"retropub/confluence/confluencetest"
	"retropub/jobs"
	"retropub/outcomes"
)

// End-to-end: the real worker and enqueue binaries, started as processes,
// against Redis (real when REDIS_URL is set) and the fake Confluence.

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "retropub-bin-")
	if err != nil {
		panic(err)
	}
	// worker is built as the production image builds it (-tags nodemo: no
	// fake Confluence, no miniredis); worker-demo as go build and make demo do.
	for _, b := range []struct{ name, pkg, tags string }{
		{"worker", "worker", "nodemo"}, {"worker-demo", "worker", ""}, {"enqueue", "enqueue", ""},
	} {
		name := b.name
		cmd := exec.Command("go", "build", "-race", "-tags", b.tags, "-o", filepath.Join(dir, name), "retropub/cmd/"+b.pkg)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build", name, err)
			os.Exit(1)
		}
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type proc struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{}
}

// processEnv is the environment of the binaries for this test's world.
func (e *env) processEnv(extra ...string) []string {
	clientID, clientSecret := e.fake.ClientCredentials()
	return append([]string{
		"ATLASSIAN_CLIENT_ID=" + clientID,
		"ATLASSIAN_CLIENT_SECRET=" + clientSecret,
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"REDIS_URL=" + e.redisURL,
		"CREDSTORE_KEYS=" + e.keys,
		"ATLASSIAN_API_URL=" + e.fake.URL(),
		"ATLASSIAN_AUTH_URL=" + e.fake.URL(),
		"CONFLUENCE_ALLOW_CIDRS=127.0.0.1/32,::1/128", // the fakes listen on loopback, over http
		"HTTP_ADDR=127.0.0.1:0",
		"WORKER_CONCURRENCY=4",
		"WORKER_SHUTDOWN_TIMEOUT=5s",
		"LOG_LEVEL=debug",
	}, slices.Concat(e.redisEnv, e.procEnv, extra)...)
}

func (e *env) start(name string, stdin string, args ...string) *proc {
	e.t.Helper()
	return e.startEnv(nil, name, stdin, args...)
}

// startEnv is start with extra VAR=value settings, which win.
func (e *env) startEnv(extra []string, name string, stdin string, args ...string) *proc {
	e.t.Helper()
	p := &proc{cmd: exec.Command(filepath.Join(binDir, name), args...), stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = e.processEnv(extra...)
	p.cmd.Stdin = strings.NewReader(stdin)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	e.t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if e.t.Failed() {
			e.t.Logf("%s %v stderr:\n%s", name, args, tail(p.stderr.String(), 4000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// runCmd runs a binary to completion and returns stdout and the exit code.
func (e *env) runCmd(name, stdin string, args ...string) (string, int) {
	e.t.Helper()
	p := e.start(name, stdin, args...)
	select {
	case <-p.done:
	case <-time.After(2 * time.Minute):
		e.t.Fatalf("%s %v did not finish", name, args)
	}
	return p.stdout.String(), p.cmd.ProcessState.ExitCode()
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var rows []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("output line %q: %v", sc.Text(), err)
		}
		rows = append(rows, m)
	}
	return rows
}

func jsonl(t *testing.T, ps ...*jobs.PublishPayload) string {
	var b bytes.Buffer
	for _, p := range ps {
		line, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// Must-show 1: `worker demo --once` prints ENG → Retrospectives → the
// sample report with 2 attachments, and Health Checks → the health check.
func TestDemoOnce(t *testing.T) {
	e := newEnv(t)
	out, code := e.runCmd("worker-demo", "", "demo", "--once")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	want := []string{`ENG "Engineering"`, `"Retrospectives"`, `"Sprint 42 Retrospective"`, "sprint-42.pdf", "votes.png", `"Health Checks"`, `"Platform Health Check November"`}
	last := -1
	for _, w := range want[:5] {
		i := strings.Index(out, w)
		if i < 0 || i < last {
			t.Fatalf("demo output lacks %q in order:\n%s", w, out)
		}
		last = i
	}
	for _, w := range want[5:] {
		if !strings.Contains(out, w) {
			t.Fatalf("demo output lacks %q:\n%s", w, out)
		}
	}
	// The sample retrospective carries exactly its PDF and its PNG.
	after := out[strings.Index(out, `"Sprint 42 Retrospective"`):]
	lines := strings.Split(after, "\n")[1:]
	n := 0
	for _, l := range lines {
		if !strings.Contains(l, "[att") {
			break
		}
		n++
	}
	if n != 2 {
		t.Fatalf("sample retrospective shows %d attachments, want 2:\n%s", n, out)
	}
}

// The operator and meeting-service paths through the real binaries:
// integrations put/show, worker, enqueue --wait, duplicates.
func TestBinariesPublishAndDeduplicate(t *testing.T) {
	e := newEnv(t)
	rec := fmt.Sprintf(`{"id":"cli-cloud","flavor":"cloud","cloud_id":%q,"auth":{"kind":"oauth2","access_token":%q}}`, e.fake.CloudID(), e.token)
	if out, code := e.runCmd("worker", rec, "integrations", "put", "--file", "-"); code != 0 {
		t.Fatalf("put: exit %d %s", code, out)
	}
	show, code := e.runCmd("worker", "", "integrations", "show", "cli-cloud")
	if code != 0 || !strings.Contains(show, "cli-cloud") || strings.Contains(show, e.token) {
		t.Fatalf("show: exit %d: %s", code, show)
	}
	w := e.start("worker", "")
	a, b := retro("e2e-a", 1, 2), retro("e2e-b", 1, 0)
	a.IntegrationID, b.IntegrationID = "cli-cloud", "cli-cloud"
	input := jsonl(t, a, b)
	out, code := e.runCmd("enqueue", input, "publish", "--file", "-", "--wait=60s")
	if code != 0 {
		t.Fatalf("enqueue: exit %d\n%s", code, out)
	}
	rows := jsonLines(t, out)
	if len(rows) != 2 || rows[0]["state"] != "completed" || rows[1]["state"] != "completed" {
		t.Fatalf("enqueue output: %s", out)
	}
	out, code = e.runCmd("enqueue", input, "publish", "--file", "-")
	rows = jsonLines(t, out)
	if code != 0 || len(rows) != 2 || rows[0]["duplicate"] != true {
		t.Fatalf("second enqueue: exit %d\n%s", code, out)
	}
	e.onePage("Retro e2e-a")
	e.onePage("Retro e2e-b")
	if !w.alive() {
		t.Fatal("worker exited")
	}
	if strings.Contains(w.stderr.String(), e.token) {
		t.Fatal("worker log contains the access token")
	}
	for _, f := range []string{`"task_id"`, `"task_type"`, `"integration"`, `"report_id"`, `"attempt"`} {
		if !strings.Contains(w.stderr.String(), f) {
			t.Errorf("worker log lacks field %s", f)
		}
	}
}

// Must-show 6 through the binary: bad payloads archived at once, the
// worker process keeps serving.
func TestWorkerBinaryArchivesInvalidPayloads(t *testing.T) {
	e := newEnv(t)
	w := e.start("worker", "")
	for i, bad := range []string{`{`, `{"schema":1,"surprise":true}`, `{"schema":2}`} {
		id := fmt.Sprintf("bad-%d", i)
		if _, err := e.client.Enqueue(asynq.NewTask(jobs.TypePublishReport, []byte(bad)), asynq.TaskID(id), asynq.MaxRetry(20)); err != nil {
			t.Fatal(err)
		}
		if info := e.wait("default", id); info.State != asynq.TaskStateArchived || info.Retried != 0 {
			t.Fatalf("%s: %s retried %d", id, info.State, info.Retried)
		}
	}
	e.publish(retro("good-after-bad", 1, 0))
	if !w.alive() {
		t.Fatal("worker died")
	}
	// Each undecodable task emitted report.invalid once, saying why.
	invalid := 0
	for _, ev := range streamEvents(t, e.rdb) {
		if ev.Type == outcomes.TypeInvalid {
			invalid++
			if ev.Error == nil || ev.Error.Class != outcomes.ClassInvalid || !strings.Contains(ev.Error.Message, "invalid payload") || !strings.HasPrefix(ev.TaskID, "bad-") {
				t.Errorf("invalid event %+v", ev)
			}
		}
	}
	if invalid != 3 {
		t.Fatalf("%d report.invalid events, want 3", invalid)
	}
}

// Must-show 4: the worker SIGKILLed after the page was created and before
// the attachments went up; restarted, the task completes with one page and
// all attachments, no duplicates. One worker life covers every backend
// (asynq's lease recovery takes about a minute, so once is enough).
func TestSIGKILLBetweenPageAndAttachments(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for asynq's lease recovery (about a minute)")
	}
	e := newParallelEnv(t, 2)
	type run struct {
		b     backend
		fake  *confluencetest.Server
		hold  *confluencetest.Hold
		title string
		task  string
	}
	runs := make([]run, len(backends))
	for i, b := range backends {
		id, fake := e.attach(b)
		runs[i] = run{b: b, fake: fake, hold: fake.HoldNext("POST", regexp.MustCompile(`/child/attachment$`)), title: "Retro killed-" + b.name}
		p := retro("killed-"+b.name, 1, 3)
		p.IntegrationID = id
		runs[i].task = e.enqueue(p).TaskID
	}
	w1 := e.start("worker", "")
	// The Server backends share one fake, so a hold may be taken by another
	// backend's upload: wait for all of them, then every page exists.
	for _, r := range runs {
		select {
		case <-r.hold.Arrived:
		case <-time.After(60 * time.Second):
			t.Fatalf("%s: attachment upload never started", r.b.name)
		}
	}
	for _, r := range runs {
		onePageIn(t, r.fake, r.title) // the page exists before the kill
	}
	if err := w1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-w1.done
	for _, r := range runs {
		r.hold.Release(false) // the upload never happened
	}
	e.start("worker", "")
	deadline := time.Now().Add(4 * time.Minute)
	for _, r := range runs {
		var info *asynq.TaskInfo
		for info == nil && time.Now().Before(deadline) {
			i, err := e.insp.GetTaskInfo("default", r.task)
			if err == nil && (i.State == asynq.TaskStateCompleted || i.State == asynq.TaskStateArchived) {
				info = i
			}
			time.Sleep(200 * time.Millisecond)
		}
		if info == nil || info.State != asynq.TaskStateCompleted {
			t.Fatalf("%s: task did not complete after restart: %+v", r.b.name, info)
		}
		page := onePageIn(t, r.fake, r.title)
		atts := r.fake.Attachments(page.ID)
		names := map[string]int{}
		for _, a := range atts {
			names[a.Title]++
		}
		if len(atts) != 3 || len(names) != 3 {
			t.Fatalf("%s: attachments %v", r.b.name, names)
		}
	}
	// The killed attempt recorded nothing; its re-run one published event.
	count := map[string]int{}
	for _, ev := range streamEvents(t, e.rdb) {
		count[ev.ReportID+" "+ev.Type]++
	}
	for _, r := range runs {
		if c := count["killed-"+r.b.name+" "+outcomes.TypePublished]; c != 1 || len(count) != len(runs) {
			t.Fatalf("%s: %d published events; all events %v", r.b.name, c, count)
		}
	}
}

// The Atlassian endpoints come from the operator's configuration, so a
// Cloud worker reaches a gateway on loopback without CONFLUENCE_ALLOW_CIDRS;
// that variable is for customers' Server/Data Center addresses.
func TestCloudGatewayOnLoopbackNeedsNoAllowCIDRs(t *testing.T) {
	e := newEnv(t)
	e.procEnv = append(e.procEnv, "CONFLUENCE_ALLOW_CIDRS=")
	e.start("worker", "")
	e.publish(retro("no-cidrs", 1, 1))
	e.onePage("Retro no-cidrs")
}
