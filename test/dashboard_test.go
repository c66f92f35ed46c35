package test

import (
	"bytes"
	"context"
	"html"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// chromium finds Debian's chromium (apt-get install chromium); the
// dashboard test skips without it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium is not installed (apt-get install chromium)")
	return ""
}

// headless runs one headless Chromium with a fresh profile and no
// background traffic, giving the React app virtual time to render.
func headless(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	base := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--hide-scrollbars", "--virtual-time-budget=10000",
	}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, tail(stderr.String(), 2000))
	}
	return out
}

var dashboardLine = regexp.MustCompile(`Dashboard: http://(\S+)/dashboard\s+\(login (\S+) / (\S+)\)`)

// Must-show 1: during `worker demo`, headless Chromium logs into
// /dashboard, finds the report:publish task in the default queue's
// completed list, opens it, sees its payload as formatted JSON, and saves
// a screenshot (RETROPUB_SCREENSHOT=path keeps it, e.g. docs/dashboard.png).
func TestDashboardInChromium(t *testing.T) {
	bin := chromium(t)
	e := newEnv(t)
	demo := e.start("worker-demo", "", "demo")
	var addr, user, password string
	deadline := time.Now().Add(60 * time.Second)
	for addr == "" && time.Now().Before(deadline) && demo.alive() {
		if m := dashboardLine.FindStringSubmatch(demo.stdout.String()); m != nil {
			addr, user, password = m[1], m[2], m[3]
		}
		time.Sleep(50 * time.Millisecond)
	}
	if addr == "" {
		t.Fatalf("demo printed no dashboard login:\n%s", demo.stdout.String())
	}
	root := "http://" + user + ":" + password + "@" + addr + "/dashboard"

	completed := root + "/queues/default?status=completed"
	list := string(headless(t, bin, "--dump-dom", completed))
	if strings.Count(list, ">report:publish</td>") != 2 || !strings.Contains(list, "Sprint 42 Retrospective") {
		t.Fatalf("completed list lacks the report:publish tasks:\n%s", tail(list, 3000))
	}
	checkOneLinePerTask(t, list)
	if shot := os.Getenv("RETROPUB_SCREENSHOT_LIST"); shot != "" {
		headless(t, bin, "--window-size=1400,700", "--screenshot="+shot, completed)
	}

	const taskID = "report:publish:demo-cloud:retro-8f2c:1"
	detail := root + "/queues/default/tasks/" + taskID
	dom := string(headless(t, bin, "--dump-dom", detail))
	for _, want := range []string{taskID, ">report:publish<", ">completed<", `"integration_id"`, `"Sprint 42 Retrospective"`, `"outcome"`, `"published"`} {
		if !strings.Contains(dom, want) {
			t.Fatalf("task page lacks %q:\n%s", want, tail(dom, 3000))
		}
	}
	// Formatted, not one line: the payload's fields sit on their own lines.
	if !regexp.MustCompile(`\{\n(<[^>]+>)*  (<[^>]+>)*"schema"`).MatchString(dom) {
		t.Errorf("payload is not indented JSON")
	}

	shot := os.Getenv("RETROPUB_SCREENSHOT")
	if shot == "" {
		shot = filepath.Join(t.TempDir(), "dashboard.png")
	}
	headless(t, bin, "--window-size=1280,1600", "--screenshot="+shot, detail)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil || img.Bounds().Dx() < 1000 {
		t.Fatalf("screenshot %s: %v %v", shot, err, img)
	}
	t.Logf("screenshot saved to %s", shot)
}

var (
	tableRow  = regexp.MustCompile(`(?s)<tr class="MuiTableRow-root[^"]*">(.*?)</tr>`)
	codeBlock = regexp.MustCompile(`(?s)<pre[^>]*>(.*?)</pre>`)
	htmlTag   = regexp.MustCompile(`<[^>]+>`)
)

// checkOneLinePerTask: each task row of the list shows its payload and
// result on one line (the summary formatters), naming integration, report,
// revision, title and attachment count, with no inline data.
func checkOneLinePerTask(t *testing.T, dom string) {
	t.Helper()
	rows := 0
	for _, row := range tableRow.FindAllStringSubmatch(dom, -1) {
		if !strings.Contains(row[1], ">report:publish</td>") {
			continue
		}
		rows++
		blocks := codeBlock.FindAllStringSubmatch(row[1], -1)
		if len(blocks) != 2 {
			t.Fatalf("row %d: %d code blocks, want payload and result:\n%s", rows, len(blocks), row[1])
		}
		payload := html.UnescapeString(htmlTag.ReplaceAllString(blocks[0][1], ""))
		result := html.UnescapeString(htmlTag.ReplaceAllString(blocks[1][1], ""))
		for _, text := range []string{payload, result} {
			if strings.Contains(text, "\n") {
				t.Errorf("row %d spans several lines: %q", rows, text)
			}
		}
		if !regexp.MustCompile(`^demo-cloud · \S+ rev 1 · ".+" · 2 attachments$`).MatchString(payload) {
			t.Errorf("row %d payload %q is not the one-line summary", rows, payload)
		}
		if !strings.HasPrefix(result, "published · page ") {
			t.Errorf("row %d result %q", rows, result)
		}
	}
	if rows != 2 {
		t.Fatalf("%d report:publish rows, want 2", rows)
	}
	if strings.Contains(dom, "data_base64") {
		t.Error("the list shows inline attachment data")
	}
}
