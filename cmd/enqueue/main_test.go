package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"retropub/jobs"
)

type harness struct {
	mr     *miniredis.Miniredis
	rdb    *redis.Client
	insp   *asynq.Inspector
	getenv func(string) string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	envs := map[string]string{"REDIS_URL": "redis://" + mr.Addr()}
	return &harness{mr: mr, rdb: rdb, insp: asynq.NewInspectorFromRedisClient(rdb), getenv: func(k string) string { return envs[k] }}
}

type outLine struct {
	Event     int             `json:"event"`
	EventID   string          `json:"event_id"`
	TaskID    string          `json:"task_id"`
	State     string          `json:"state"`
	Duplicate bool            `json:"duplicate"`
	Rerun     bool            `json:"rerun"`
	Result    json.RawMessage `json:"result"`
	Error     string          `json:"error"`
}

// cli runs the command in-process and parses its JSON lines.
func (h *harness) cli(t *testing.T, stdin string, args ...string) (int, []outLine, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr, h.getenv)
	var lines []outLine
	for _, raw := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if raw == "" {
			continue
		}
		var l outLine
		dec := json.NewDecoder(strings.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("output line %q: %v", raw, err)
		}
		lines = append(lines, l)
	}
	return code, lines, stderr.String()
}

func eventJSON(eventID, reportID string, rev int) string {
	return fmt.Sprintf(`{"schema":1,"event_id":%q,"integration_id":"acme","report":{"id":%q,"revision":%d,"kind":"retrospective","title":"Sprint %d"},"target":{"space_key":"ENG"}}`,
		eventID, reportID, rev, rev)
}

func jsonl(events ...string) string { return strings.Join(events, "\n") + "\n" }

func (h *harness) pending(t *testing.T) int {
	t.Helper()
	qs, err := h.insp.Queues()
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) == 0 {
		return 0
	}
	tasks, err := h.insp.ListPendingTasks("default", asynq.PageSize(1000))
	if err != nil {
		t.Fatal(err)
	}
	return len(tasks)
}

// startServer runs an asynq server with h as the report:publish handler.
func (h *harness) startServer(t *testing.T, handler asynq.HandlerFunc) {
	t.Helper()
	srv := asynq.NewServerFromRedisClient(h.rdb, asynq.Config{
		Concurrency: 2, Queues: map[string]int{"default": 1},
		TaskCheckInterval: 20 * time.Millisecond, LogLevel: asynq.FatalLevel,
	})
	mux := asynq.NewServeMux()
	mux.Handle(jobs.TypePublishReport, handler)
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
}

func TestPublishJSONLines(t *testing.T) {
	h := newHarness(t)
	in := jsonl(eventJSON("e1", "r1", 1), eventJSON("e2", "r2", 1), eventJSON("e3", "r1", 2))
	code, lines, stderr := h.cli(t, in, "publish", "--file", "-")
	if code != 0 || len(lines) != 3 {
		t.Fatalf("code=%d lines=%+v stderr=%s", code, lines, stderr)
	}
	for i, l := range lines {
		if l.Event != i+1 || l.EventID != fmt.Sprintf("e%d", i+1) || l.State != "pending" || l.Duplicate {
			t.Errorf("line %d = %+v", i, l)
		}
	}
	if lines[2].TaskID != "report:publish:acme:r1:2" {
		t.Errorf("task id = %q", lines[2].TaskID)
	}
	if n := h.pending(t); n != 3 {
		t.Errorf("%d pending, want 3", n)
	}

	// Sending the same file again is a no-op reported as duplicates.
	code, lines, _ = h.cli(t, in, "publish", "--file", "-")
	if code != 0 || len(lines) != 3 || !lines[0].Duplicate || lines[0].State != "pending" {
		t.Fatalf("again: code=%d lines=%+v", code, lines)
	}
	if n := h.pending(t); n != 3 {
		t.Errorf("%d pending after re-send, want 3", n)
	}
}

func TestPublishFromFileAndPretty(t *testing.T) {
	h := newHarness(t)
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, []byte(eventJSON("e1", "r1", 1)), "", "  "); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(path, pretty.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	code, lines, stderr := h.cli(t, "", "publish", "--file", path)
	if code != 0 || len(lines) != 1 || lines[0].State != "pending" {
		t.Fatalf("code=%d lines=%+v stderr=%s", code, lines, stderr)
	}
	info, err := h.insp.GetTaskInfo("default", "report:publish:acme:r1:1")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(info.Payload, []byte("\n")) || bytes.Contains(info.Payload, []byte(": ")) {
		t.Errorf("payload not compacted: %s", info.Payload)
	}

	// Several pretty objects back to back work too.
	code, lines, _ = h.cli(t, pretty.String()+strings.ReplaceAll(pretty.String(), `"r1"`, `"r2"`), "publish", "--file=-")
	if code != 0 || len(lines) != 2 || !lines[0].Duplicate || lines[1].Duplicate {
		t.Fatalf("concatenated: code=%d lines=%+v", code, lines)
	}
}

func TestPublishInvalidEnqueuesNothing(t *testing.T) {
	h := newHarness(t)
	bad := strings.Replace(eventJSON("e2", "r2", 1), `"id":"r2",`, "", 1)
	in := jsonl(eventJSON("e1", "r1", 1), bad, eventJSON("e3", "r3", 1))
	code, lines, stderr := h.cli(t, in, "publish", "--file", "-")
	if code != 2 {
		t.Fatalf("code = %d, want 2 (stderr %s)", code, stderr)
	}
	if len(lines) != 1 {
		t.Fatalf("lines = %+v, want one invalid line", lines)
	}
	l := lines[0]
	if l.Event != 2 || l.EventID != "e2" || l.State != "invalid" || l.Error != "event 2 (event_id e2): report.id: required" {
		t.Errorf("line = %+v", l)
	}
	if n := h.pending(t); n != 0 {
		t.Errorf("%d tasks enqueued, want none", n)
	}
	if !strings.Contains(stderr, "nothing was enqueued") {
		t.Errorf("stderr = %q", stderr)
	}
}

func TestPublishUnreadable(t *testing.T) {
	h := newHarness(t)
	in := eventJSON("e1", "r1", 1) + "\n" + eventJSON("e2", "r2", 1) + "\nnot json\n"
	code, lines, stderr := h.cli(t, in, "publish", "--file", "-")
	if code != 2 || len(lines) != 1 || lines[0].State != "invalid" || !strings.HasPrefix(lines[0].Error, "event 3: ") {
		t.Fatalf("code=%d lines=%+v", code, lines)
	}
	if stderr == "" {
		t.Error("no message on stderr")
	}
	if n := h.pending(t); n != 0 {
		t.Errorf("%d enqueued", n)
	}
}

func TestPublishRepeatWithinInput(t *testing.T) {
	h := newHarness(t)
	ev := eventJSON("e1", "r1", 1)
	code, lines, _ := h.cli(t, jsonl(ev, ev), "publish", "--file", "-")
	if code != 0 || len(lines) != 2 || lines[0].Duplicate || !lines[1].Duplicate || lines[1].TaskID != lines[0].TaskID {
		t.Fatalf("code=%d lines=%+v", code, lines)
	}
}

func TestPublishArchivedDuplicate(t *testing.T) {
	h := newHarness(t)
	in := jsonl(eventJSON("e1", "r1", 1))
	if code, _, _ := h.cli(t, in, "publish", "--file", "-"); code != 0 {
		t.Fatal(code)
	}
	if err := h.insp.ArchiveTask("default", "report:publish:acme:r1:1"); err != nil {
		t.Fatal(err)
	}
	code, lines, _ := h.cli(t, in, "publish", "--file", "-")
	if code != 1 || len(lines) != 1 || lines[0].State != "archived" || !lines[0].Duplicate || lines[0].Error == "" {
		t.Fatalf("archived: code=%d lines=%+v", code, lines)
	}
	code, lines, _ = h.cli(t, in, "publish", "--file", "-", "--rerun-archived")
	if code != 0 || len(lines) != 1 || lines[0].State != "pending" || !lines[0].Duplicate || !lines[0].Rerun {
		t.Fatalf("rerun: code=%d lines=%+v", code, lines)
	}
}

func TestPublishWaitTimeout(t *testing.T) {
	h := newHarness(t)
	start := time.Now()
	code, lines, _ := h.cli(t, jsonl(eventJSON("e1", "r1", 1)), "publish", "--file", "-", "--wait=300ms")
	if code != 1 || len(lines) != 1 || lines[0].State != "timeout" || !strings.Contains(lines[0].Error, "pending") {
		t.Fatalf("code=%d lines=%+v", code, lines)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v; --wait should bound the command", d)
	}
}

func TestPublishWaitCompleted(t *testing.T) {
	h := newHarness(t)
	h.startServer(t, func(ctx context.Context, task *asynq.Task) error {
		p, err := jobs.DecodePublishPayload(task.Payload())
		if err != nil {
			return err
		}
		_, err = task.ResultWriter().Write([]byte(`{"page_id":"123","report":"` + p.Report.ID + `"}`))
		return err
	})
	in := jsonl(eventJSON("e1", "r1", 1), eventJSON("e2", "r2", 1))
	code, lines, stderr := h.cli(t, in, "publish", "--file", "-", "--wait=20s")
	if code != 0 || len(lines) != 2 {
		t.Fatalf("code=%d lines=%+v stderr=%s", code, lines, stderr)
	}
	for i, l := range lines {
		want := fmt.Sprintf(`{"page_id":"123","report":"r%d"}`, i+1)
		if l.State != "completed" || string(l.Result) != want || l.Error != "" {
			t.Errorf("line %d = %+v (result %s)", i, l, l.Result)
		}
	}
	// A completed duplicate is accepted and shows its stored result.
	code, lines, _ = h.cli(t, jsonl(eventJSON("e1", "r1", 1)), "publish", "--file", "-", "--wait")
	if code != 0 || len(lines) != 1 || !lines[0].Duplicate || lines[0].State != "completed" || len(lines[0].Result) == 0 {
		t.Fatalf("duplicate: code=%d lines=%+v", code, lines)
	}
}

func TestPublishWaitArchived(t *testing.T) {
	h := newHarness(t)
	h.startServer(t, func(context.Context, *asynq.Task) error {
		return fmt.Errorf("boom: %w", asynq.SkipRetry)
	})
	code, lines, _ := h.cli(t, jsonl(eventJSON("e1", "r1", 1)), "publish", "--file", "-", "--wait=20s")
	if code != 1 || len(lines) != 1 || lines[0].State != "archived" || !strings.HasPrefix(lines[0].Error, "boom") {
		t.Fatalf("code=%d lines=%+v", code, lines)
	}
}

func TestPublishUsageErrors(t *testing.T) {
	h := newHarness(t)
	in := jsonl(eventJSON("e1", "r1", 1))
	for _, args := range [][]string{
		{},
		{"nope"},
		{"publish"},
		{"publish", "--file", "-", "--wait", "90s"},
		{"publish", "--file", "-", "--wait=soon"},
		{"publish", "--file", "-", "--colour"},
		{"publish", "--file", filepath.Join(t.TempDir(), "missing.json")},
		{"test", "--integration", "x"},
		{"check"},
		{"search"},
	} {
		if code, _, stderr := h.cli(t, in, args...); code != 2 || stderr == "" {
			t.Errorf("%q: code=%d stderr=%q, want 2 and a message", args, code, stderr)
		}
	}
	if n := h.pending(t); n != 0 {
		t.Errorf("%d enqueued by usage errors", n)
	}
}

func TestPublishRedisUnreachable(t *testing.T) {
	h := newHarness(t)
	addr := h.mr.Addr()
	h.mr.Close()
	h.getenv = func(k string) string {
		if k == "REDIS_URL" {
			return "redis://" + addr
		}
		return ""
	}
	code, lines, stderr := h.cli(t, jsonl(eventJSON("e1", "r1", 1)), "publish", "--file", "-")
	if code != 3 || len(lines) != 0 || !strings.Contains(stderr, "redis unreachable") {
		t.Fatalf("code=%d lines=%+v stderr=%q", code, lines, stderr)
	}

	h.getenv = func(k string) string {
		if k == "REDIS_URL" {
			return "http://nope"
		}
		return ""
	}
	if code, _, stderr := h.cli(t, jsonl(eventJSON("e1", "r1", 1)), "publish", "--file", "-"); code != 3 || !strings.Contains(stderr, "REDIS_URL") {
		t.Fatalf("bad config: code=%d stderr=%q", code, stderr)
	}
}

func TestWaitFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want time.Duration
		set  bool
		rest int
	}{
		{nil, 0, false, 0},
		{[]string{"--wait"}, 60 * time.Second, true, 0},
		{[]string{"--wait=90s"}, 90 * time.Second, true, 0},
		{[]string{"-wait=2m"}, 2 * time.Minute, true, 0},
		{[]string{"--wait", "90s"}, 60 * time.Second, true, 1},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		var w waitFlag
		fs.Var(&w, "wait", "")
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if w.d != tc.want || w.set != tc.set || fs.NArg() != tc.rest {
			t.Errorf("%q: got %v %v rest=%d", tc.args, w.d, w.set, fs.NArg())
		}
	}
}

// An oversized event is refused once it passes the payload limit, not
// after it has been read whole (issue 13 item 10).
func TestOversizedEventStopsReadingAtTheCap(t *testing.T) {
	h := newHarness(t)
	const size = 50 << 20
	in := io.MultiReader(strings.NewReader(eventJSON("e1", "r1", 1)+"\n"+`{"schema":1,"integration_id":"acme","x":"`),
		io.LimitReader(repeatByte('a'), size), strings.NewReader(`"}`))
	var stdout, stderr bytes.Buffer
	var code int
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	code = run(context.Background(), []string{"publish", "--file", "-"}, in, &stdout, &stderr, h.getenv)
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %.1f MiB reading a %d MiB event", float64(allocated)/(1<<20), size>>20)
	if code == 0 || !strings.Contains(stdout.String(), "event 2: more than 4 MiB") {
		t.Fatalf("exit %d, stdout %s, stderr %s", code, stdout.String(), stderr.String())
	}
	if allocated > 32<<20 {
		t.Errorf("allocated %d MiB for a %d MiB event, want under 32 MiB", allocated>>20, size>>20)
	}
	if n, _ := h.rdb.Keys(context.Background(), "asynq:*:t:*").Result(); len(n) != 0 {
		t.Errorf("tasks enqueued: %v", n)
	}
}

type repeatByte byte

func (b repeatByte) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

// Must-show: three bad events, one of them not JSON, and every problem of
// all three is printed (several per event), none hidden by the line that
// is not JSON.
func TestPublishReportsEveryProblemOfEveryEvent(t *testing.T) {
	h := newHarness(t)
	two := strings.NewReplacer(`"id":"r2",`, "", `"space_key":"ENG"`, `"space_key":"bad key!"`).Replace(eventJSON("e2", "r2", 1))
	three := strings.NewReplacer(`"kind":"retrospective"`, `"kind":"poll"`, `"title":"Sprint 1"`, `"title":"  "`, `"revision":1`, `"revision":-4`).Replace(eventJSON("e5", "r5", 1))
	in := jsonl(eventJSON("e1", "r1", 1), two, "this line is not JSON {", eventJSON("e4", "r4", 1), three)
	code, lines, stderr := h.cli(t, in, "publish", "--file", "-")
	if code != 2 {
		t.Fatalf("code = %d, want 2 (stderr %s)", code, stderr)
	}
	want := []struct {
		event    int
		problems []string
	}{
		{2, []string{"event 2 (event_id e2): ", "report.id: required", `target.space_key: "bad key!" is not a Confluence space key`}},
		{3, []string{"event 3: not JSON: invalid character 'h' in literal true (expecting 'r') (near byte ", "reading on from the next line"}},
		{5, []string{"event 5 (event_id e5): ", "report.revision: -4 must be at least 1", `report.kind: "poll" is not one of retrospective, health_check`, "report.title: required"}},
	}
	if len(lines) != len(want) {
		t.Fatalf("lines = %+v, want %d invalid lines", lines, len(want))
	}
	for i, w := range want {
		l := lines[i]
		if l.Event != w.event || l.State != "invalid" || !strings.HasPrefix(l.Error, w.problems[0]) {
			t.Errorf("line %d = %+v, want event %d starting %q", i, l, w.event, w.problems[0])
		}
		for _, p := range w.problems[1:] {
			if !strings.Contains(l.Error, p) {
				t.Errorf("event %d: %q lacks %q", w.event, l.Error, p)
			}
		}
	}
	if !strings.Contains(stderr, "3 invalid event(s); nothing was enqueued") {
		t.Errorf("stderr = %q", stderr)
	}
	if n := h.pending(t); n != 0 {
		t.Errorf("%d tasks enqueued, want none", n)
	}
}

// A pretty-printed object broken in the middle costs one event, and the
// byte position points into the whole input.
func TestPublishResyncsAfterBrokenPrettyObject(t *testing.T) {
	h := newHarness(t)
	good := eventJSON("e1", "r1", 1)
	broken := "{\n  \"schema\": 1,\n  \"event_id\": \"e2\" oops\n  \"x\": 2\n}"
	in := good + "\n" + broken + "\n" + eventJSON("e3", "r3", 1) + "\nnot json\n"
	code, lines, _ := h.cli(t, in, "publish", "--file", "-")
	if code != 2 || len(lines) != 2 {
		t.Fatalf("code=%d lines=%+v, want 2 invalid lines", code, lines)
	}
	off := len(good) + 1 + strings.Index(broken, "oops")
	if lines[0].Event != 2 || !strings.Contains(lines[0].Error, fmt.Sprintf("(near byte %d)", off+1)) {
		t.Errorf("line 0 = %+v, want event 2 near byte %d", lines[0], off+1)
	}
	if lines[1].Event != 4 || !strings.HasPrefix(lines[1].Error, "event 4: not JSON") || strings.Contains(lines[1].Error, "reading on") {
		t.Errorf("line 1 = %+v, want event 4, the last", lines[1])
	}
}
