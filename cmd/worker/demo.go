package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"retropub/config"
	"retropub/credstore"
	"retropub/internal/logging"
	"retropub/jobs"
	"retropub/test/fakeconfluence"
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
	fake := fakeconfluence.New(fakeconfluence.Options{})
	fake.Start()
	defer fake.Close()
	fake.AddSpace("ENG", "Engineering")
	token := randomHex(24)
	fake.AddAccessToken(token)

	kid, key := credstore.GenerateKey()
	user, password := "admin", randomHex(8)
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
	for _, p := range samplePayloads() {
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
		m.HandleFunc("/preview", func(w http.ResponseWriter, r *http.Request) { writePreview(w, fake) })
	}))
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(stdout, "\nDashboard: http://%s/dashboard  (login %s / %s)\nPreview:   http://%s/preview\nMetrics:   http://%s/metrics\nCtrl-C to stop.\n", addr, user, password, addr, addr)
	<-ctx.Done()
	return nil
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

func writePreview(w http.ResponseWriter, fake *fakeconfluence.Server) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprint(w, "<!doctype html><meta charset=utf-8><title>retropub preview</title><body style='font-family:sans-serif;max-width:60em;margin:auto'>")
	for _, p := range fake.Pages("ENG") {
		fmt.Fprintf(w, "<article style='border:1px solid #ccc;padding:1em;margin:1em 0'><h1>%s</h1>%s</article>", htmlEscape(p.Title), p.Body)
	}
}

func htmlEscape(s string) string {
	var b bytes.Buffer
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func samplePayloads() []*jobs.PublishPayload {
	prev := 3.1
	prevFun := 4.0
	return []*jobs.PublishPayload{
		{
			Schema: 1, EventID: "evt-demo-1", IntegrationID: "demo-cloud",
			Report: jobs.Report{
				ID: "retro-8f2c", Revision: 1, Kind: jobs.KindRetrospective,
				Title: "Sprint 42 Retrospective", Team: "Platform", HeldAt: "2026-11-27T15:00:00Z",
				Facilitator: "Dana", Participants: []string{"Dana", "Lee", "Sam"}, Link: "https://app.example.com/r/8f2c",
				Summary: "A calm sprint: CI got faster, on-call was noisy.",
				Sections: []jobs.Section{
					{Name: "Went well", Items: []jobs.Item{{Text: "CI is faster", Votes: 4, Group: "Tooling"}, {Text: "Pairing on the <parser> & lexer", Votes: 2}}},
					{Name: "To improve", Items: []jobs.Item{{Text: "Pager noise at night", Votes: 5, Group: "On-call"}}},
				},
				Actions: []jobs.Action{{Text: "Pin Go version", Assignee: "Lee", Due: "2026-12-05"}, {Text: "Tune alert thresholds", Assignee: "Sam", Done: true}},
			},
			Target: jobs.Target{SpaceKey: "ENG"},
			Attachments: []jobs.Attachment{
				{Filename: "sprint-42.pdf", ContentType: "application/pdf", DataBase64: base64.StdEncoding.EncodeToString(samplePDF)},
				{Filename: "votes.png", ContentType: "image/png", DataBase64: base64.StdEncoding.EncodeToString(samplePNG())},
			},
		},
		{
			Schema: 1, EventID: "evt-demo-2", IntegrationID: "demo-cloud",
			Report: jobs.Report{
				ID: "health-31aa", Revision: 1, Kind: jobs.KindHealthCheck,
				Title: "Platform Health Check November", Team: "Platform", HeldAt: "2026-11-28T10:00:00Z",
				Health: &jobs.Health{Dimensions: []jobs.Dimension{
					{Name: "Speed", Score: 3.4, Scale: 5, Previous: &prev, Rating: "green", Comments: []string{"Deploys are quick"}},
					{Name: "Fun", Score: 2.5, Scale: 5, Previous: &prevFun, Rating: "red", Comments: []string{"Too many incidents"}},
				}},
				Actions: []jobs.Action{{Text: "Hold an incident review", Assignee: "Dana"}},
			},
			Target: jobs.Target{SpaceKey: "ENG"},
		},
	}
}

func samplePNG() []byte {
	img := image.NewRGBA(image.Rect(0, 0, 40, 20))
	for x := 0; x < 40; x++ {
		for y := 20 - x/2; y < 20; y++ {
			img.Set(x, y, color.RGBA{0x36, 0x7b, 0xf5, 0xff})
		}
	}
	var b bytes.Buffer
	_ = png.Encode(&b, img)
	return b.Bytes()
}

// samplePDF is a minimal one-page PDF.
var samplePDF = []byte("%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 100]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")
