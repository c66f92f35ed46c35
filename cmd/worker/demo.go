//go:build !nodemo

// The demo links the fake Confluence and miniredis, so it is compiled only
// with the demo build tag (make demo); the production worker (make build,
// the Dockerfile, a plain go build) carries neither. demo_off.go answers
// "worker demo" in that build.

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"retropub/config"
	"retropub/confluence/confluencetest"
	"retropub/credstore"
	"retropub/internal/logging"
	"retropub/internal/preview"
	"retropub/internal/randhex"
	"retropub/jobs"
)

// runDemo runs the whole pipeline in one process: miniredis, the fake
// Confluence, a generated key, two sample reports, the page tree printed.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	once := fs.Bool("once", false, "exit after printing the page tree")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := demo(ctx, *once, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	return 0
}

func demo(ctx context.Context, once bool, stdout, stderr io.Writer) error {
	mr, err := miniredis.Run()
	if err != nil {
		return err
	}
	defer mr.Close()
	fake := confluencetest.New(confluencetest.Options{})
	fake.Start()
	defer fake.Close()
	fake.AddSpace("ENG", "Engineering")
	token := randhex.String(24)
	fake.AddAccessToken(token)

	files := serveSampleFiles()
	defer files.Close()

	kid, key := credstore.GenerateKey()
	user, password := "admin", randhex.String(8)
	env := map[string]string{
		"REDIS_URL":          "redis://" + mr.Addr(),
		"ATLASSIAN_API_URL":  fake.URL(),
		"ATLASSIAN_AUTH_URL": fake.URL(),
		"CREDSTORE_KEYS":     kid + ":" + key,
		"HTTP_ADDR":          "127.0.0.1:8080",
		"DASHBOARD_USER":     user,
		"DASHBOARD_PASSWORD": password,
		"LOG_LEVEL":          "warn",
		"LOG_FORMAT":         "console",

		// The fake listens on loopback, over http: the egress policy
		// refuses both unless allowed.
		"CONFLUENCE_ALLOW_CIDRS": "127.0.0.1/32,::1/128",
		// The sample's CSV comes by url from the in-process file server.
		"ATTACHMENT_URL_HOSTS": "127.0.0.1",
	}
	cfg, err := config.Load(func(k string) string {
		if v := os.Getenv(k); v != "" && (k == "HTTP_ADDR" || k == "LOG_LEVEL" || k == "LOG_FORMAT") {
			return v
		}
		return env[k]
	})
	if err != nil {
		return err
	}
	log, err := logging.New(cfg.LogLevel, cfg.LogFormat, stderr)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	a, err := newApp(cfg, log, rdb)
	if err != nil {
		return err
	}
	err = a.store.Put(ctx, &credstore.Record{
		ID: "demo-cloud", Flavor: "cloud", CloudID: fake.CloudID(), SiteURL: "https://example.atlassian.net",
		Auth: credstore.Auth{Kind: "oauth2", AccessToken: credstore.Secret(token), ExpiresAt: time.Now().Add(time.Hour)},
	})
	if err != nil {
		return err
	}
	if err := a.start(); err != nil {
		return err
	}
	defer a.shutdown()

	client := asynq.NewClientFromRedisClient(rdb)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	var ids []string
	for _, p := range samplePayloads(files.URL) {
		res, err := jobs.EnqueuePublish(ctx, client, insp, p, jobs.EnqueueOptions{})
		if err != nil {
			return fmt.Errorf("enqueue %s: %w", p.Report.ID, err)
		}
		ids = append(ids, res.TaskID)
	}
	for _, id := range ids {
		if err := waitDone(ctx, insp, id, 60*time.Second); err != nil {
			return err
		}
	}
	fmt.Fprintln(stdout, "Confluence page tree (fake Confluence Cloud at "+fake.URL()+"):")
	fmt.Fprint(stdout, fake.Tree("ENG"))
	if once {
		return nil
	}
	dash, closeDash := dashboard(asynq.RedisClientOpt{Addr: mr.Addr()}, user, password, cfg.DashboardReadOnly)
	defer closeDash()
	addr, stop, err := startHTTP(log, cfg.HTTPAddr, a.httpMux(func(m *http.ServeMux) {
		m.Handle("/dashboard/", dash)
		m.Handle("/dashboard", dash)
		preview := preview.Handler(fakePages{fake}, "ENG")
		m.Handle("/preview", preview)
		m.Handle("/preview/", preview)
	}))
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(stdout, "\nDashboard: http://%s/dashboard  (login %s / %s)\nMetrics:   http://%s/metrics\nPreview:   http://%s/preview\n", addr, user, password, addr, addr)
	for _, p := range samplePayloads("") {
		fmt.Fprintf(stdout, "           http://%s/preview/%s  %s\n", addr, p.Report.ID, p.Report.Title)
	}
	fmt.Fprintln(stdout, "Ctrl-C to stop.")
	<-ctx.Done()
	return nil
}

// fakePages shows the fake's pages to the preview.
type fakePages struct{ fake *confluencetest.Server }

func (f fakePages) Pages(space string) []preview.Page {
	var out []preview.Page
	for _, p := range f.fake.Pages(space) {
		out = append(out, preview.Page{ID: p.ID, ParentID: p.ParentID, Title: p.Title, Body: p.Body, Version: p.Version})
	}
	return out
}

func (f fakePages) Files(pageID string) []preview.File {
	var out []preview.File
	for _, a := range f.fake.Attachments(pageID) {
		out = append(out, preview.File{Name: a.Title, MediaType: a.MediaType, Data: a.Data})
	}
	return out
}

func waitDone(ctx context.Context, insp *asynq.Inspector, id string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		info, err := insp.GetTaskInfo("default", id)
		if err == nil {
			switch info.State {
			case asynq.TaskStateCompleted:
				return nil
			case asynq.TaskStateArchived:
				return fmt.Errorf("task %s archived: %s", id, info.LastErr)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("task %s not done after %s", id, limit)
}

// sampleCSV is the raw vote export the sample retrospective attaches by url.
var sampleCSV = []byte("dimension,score,previous\nSpeed,3.4,3.1\nFun,2.5,4\n")

// serveSampleFiles stands in for the meeting service's file store.
func serveSampleFiles() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/raw-scores.csv" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/csv")
		_, _ = w.Write(sampleCSV)
	}))
}

func samplePayloads(filesURL string) []*jobs.PublishPayload {
	prevSpeed, prevFun, prevCode := 3.1, 4.0, 3.0
	csvSum := sha256.Sum256(sampleCSV)
	return []*jobs.PublishPayload{
		{
			Schema: 1, EventID: "evt-demo-1", IntegrationID: "demo-cloud",
			Report: jobs.Report{
				ID: "retro-8f2c", Revision: 1, Kind: jobs.KindRetrospective,
				Title: "Sprint 42 Retrospective", Team: "Platform", HeldAt: "2026-11-27T15:00:00Z",
				Facilitator: "Dana", Participants: []string{"Dana", "Lee", "Sam", "Ana María"}, Link: "https://app.example.com/r/8f2c",
				Summary: "A calm sprint: CI got faster, on-call was noisy.\n\nWe agreed to pin the Go version and tune the alerts before the holidays.",
				Sections: []jobs.Section{
					{Name: "Went well", Items: []jobs.Item{
						{Text: "Pairing on the <parser> & lexer", Votes: 2},
						{Text: "CI is faster", Votes: 4, Group: "Tooling"},
						{Text: "Cached module downloads", Votes: 1, Group: "Tooling"},
						{Text: "Demo went smoothly", Votes: 3, Group: "Delivery"},
						{Text: "Shipped the export API", Votes: 3, Group: "Delivery"},
					}},
					{Name: "To improve", Items: []jobs.Item{
						{Text: "Pager noise at night", Votes: 5, Group: "On-call"},
						{Text: "Flaky e2e tests\n(three reruns on Tuesday)", Votes: 2},
						{Text: "Review queue", Votes: 1},
					}},
				},
				Actions: []jobs.Action{
					{Text: "Pin Go version in CI", Assignee: "Lee", Due: "2026-12-05"},
					{Text: "Tune alert thresholds", Assignee: "Sam", Done: true},
					{Text: "Write a flaky-test runbook", Due: "2026-12-12"},
				},
			},
			Target: jobs.Target{SpaceKey: "ENG"},
			Attachments: []jobs.Attachment{
				{Filename: "sprint-42.pdf", ContentType: "application/pdf", DataBase64: base64.StdEncoding.EncodeToString(samplePDF)},
				{Filename: "votes.png", ContentType: "image/png", DataBase64: base64.StdEncoding.EncodeToString(barChart([]float64{4, 3, 3, 2, 1, 5, 2, 1}, 5))},
			},
		},
		{
			Schema: 1, EventID: "evt-demo-2", IntegrationID: "demo-cloud",
			Report: jobs.Report{
				ID: "health-31aa", Revision: 1, Kind: jobs.KindHealthCheck,
				Title: "Platform Health Check November", Team: "Platform", HeldAt: "2026-11-28T10:00:00Z",
				Facilitator: "Lee", Participants: []string{"Dana", "Lee", "Sam"},
				Summary: "Speed is up, fun is down: incidents ate the sprint.",
				Health: &jobs.Health{Dimensions: []jobs.Dimension{
					{Name: "Speed", Score: 3.4, Scale: 5, Previous: &prevSpeed, Rating: "green", Comments: []string{"Deploys are quick", "Builds under 5 minutes"}},
					{Name: "Fun", Score: 2.5, Scale: 5, Previous: &prevFun, Rating: "red", Comments: []string{"Too many incidents"}},
					{Name: "Codebase health", Score: 3, Scale: 5, Previous: &prevCode, Rating: "amber"},
					{Name: "Learning", Score: 4.2, Scale: 5, Rating: "green", Comments: []string{"Go 1.26 workshop"}},
				}},
				Actions: []jobs.Action{{Text: "Hold an incident review", Assignee: "Dana", Due: "2026-12-02"}, {Text: "Book the next health check", Done: true}},
			},
			Target: jobs.Target{SpaceKey: "ENG"},
			Attachments: []jobs.Attachment{
				{Filename: "scores.png", ContentType: "image/png", DataBase64: base64.StdEncoding.EncodeToString(barChart([]float64{3.4, 2.5, 3, 4.2}, 5))},
				// By url, streamed from the in-process file server.
				{Filename: "raw-scores.csv", ContentType: "text/csv", URL: filesURL + "/raw-scores.csv",
					SHA256: hex.EncodeToString(csvSum[:]), Size: int64(len(sampleCSV))},
			},
		},
	}
}

// barChart draws a small bar chart (one bar per value, scaled to max).
func barChart(values []float64, max float64) []byte {
	const w, h, bar, gap = 480, 160, 40, 16
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for x := 0; x < w; x++ {
		for y := 0; y < h; y++ {
			img.Set(x, y, color.White)
		}
	}
	blue := color.RGBA{0x00, 0x52, 0xcc, 0xff}
	for i, v := range values {
		top := h - 10 - int(v/max*float64(h-20))
		for x := gap + i*(bar+gap); x < gap+i*(bar+gap)+bar && x < w; x++ {
			for y := top; y < h-10; y++ {
				img.Set(x, y, blue)
			}
		}
	}
	var b bytes.Buffer
	_ = png.Encode(&b, img)
	return b.Bytes()
}

// samplePDF is a minimal one-page PDF.
var samplePDF = []byte("%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 100]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")
