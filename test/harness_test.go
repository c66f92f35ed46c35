package test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"retropub/confluence"
	"retropub/confluence/confluencetest"
	"retropub/credstore"
	"retropub/jobs"
	"retropub/outcomes"
)

// testDB is the Redis database the suites use on a real Redis (REDIS_URL):
// flushed before each test, never database 0. RETROPUB_TEST_DB picks
// another, so two checkouts can test against one Redis at once.
var testDB = func() int {
	if n, err := strconv.Atoi(os.Getenv("RETROPUB_TEST_DB")); err == nil && n > 0 {
		return n
	}
	return 9
}()

// env is one test's world: Redis (miniredis, or the real one when REDIS_URL
// is set), the fake Confluence, the credential store and an asynq client.
type env struct {
	t        testing.TB
	rdb      redis.UniversalClient
	redisURL string
	fake     *confluencetest.Server
	keys     string
	keyB64   string
	token    string
	store    *credstore.Store
	client   *asynq.Client
	insp     *asynq.Inspector
	logs     *syncBuffer

	integration string                  // the integration e.retro publishes to
	httpOpts    []confluence.HTTPOption // the worker's egress policy
	dc          *confluencetest.DataCenter
	// maxAttachment is the in-process worker's ATTACHMENT_MAX_BYTES (0: default).
	maxAttachment int64
	procEnv       []string             // more environment for the binaries; later entries win
	redisEnv      []string             // the binaries' Redis topology beyond REDIS_URL (cluster, Sentinel)
	mr            *miniredis.Miniredis // nil on a real Redis
	// middleware wraps the in-process worker's handlers (fault injection).
	middleware asynq.MiddlewareFunc
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newEnv(t testing.TB) *env { return newEnvDB(t, 0) }

// newParallelEnv is newEnv for a test that runs with t.Parallel: on a real
// Redis it takes its own database (testDB+slot), so flushes don't collide.
// Slots are handed out once per long test (they wait for asynq's lease
// recovery, so running them side by side saves a minute each).
//
// With redis-server installed, a parallel test gets a private redis-server
// on a free port instead, so no two tests (nor two checkouts testing on one
// machine) can share a database whatever slots they were given.
func newParallelEnv(t *testing.T, slot int) *env {
	t.Parallel()
	if os.Getenv("REDIS_URL") == "" {
		return newEnvDB(t, slot) // miniredis: private anyway
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		return newEnvDB(t, slot)
	}
	rs := startRedisServer(t, freePort(t))
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", rs.port)})
	t.Cleanup(func() { rdb.Close() })
	return newEnvOn(t, rdb, rs.url())
}

func newEnvDB(t testing.TB, slot int) *env {
	t.Helper()
	db := testDB + slot
	e := &env{t: t}
	if url := os.Getenv("REDIS_URL"); url != "" {
		opt, err := redis.ParseURL(url)
		if err != nil {
			t.Fatalf("REDIS_URL: %v", err)
		}
		opt.DB = db
		e.rdb = redis.NewClient(opt)
		if err := e.rdb.FlushDB(context.Background()).Err(); err != nil {
			t.Fatalf("flush test db: %v", err)
		}
		u, _ := neturl.Parse(url)
		u.Path = fmt.Sprintf("/%d", db)
		e.redisURL = u.String()
	} else {
		e.mr = miniredis.RunT(t)
		e.rdb = redis.NewClient(&redis.Options{Addr: e.mr.Addr()})
		e.redisURL = "redis://" + e.mr.Addr() + "/0"
	}
	return e.init()
}

// newEnvOn is a world on a Redis the test set up itself (a cluster, a
// Sentinel group); redisEnv tells the binaries how to reach it.
func newEnvOn(t testing.TB, rdb redis.UniversalClient, redisURL string, redisEnv ...string) *env {
	e := &env{t: t, rdb: rdb, redisURL: redisURL, redisEnv: redisEnv}
	return e.init()
}

// init builds the rest of the world around e.rdb.
func (e *env) init() *env {
	t := e.t
	t.Helper()
	e.logs, e.integration, e.httpOpts = &syncBuffer{}, "acme-cloud", []confluence.HTTPOption{allowLoopback()}
	t.Cleanup(func() { e.rdb.Close() })

	e.fake = confluencetest.New(confluencetest.Options{})
	e.fake.Start()
	t.Cleanup(e.fake.Close)
	e.fake.AddSpace("ENG", "Engineering")
	e.token = "tok-" + strings.Repeat("s3cr3t", 4)
	e.fake.AddAccessToken(e.token)

	kid, key := credstore.GenerateKey()
	e.keys, e.keyB64 = kid+":"+key, key
	keys, err := credstore.ParseKeys(e.keys)
	if err != nil {
		t.Fatal(err)
	}
	e.store = credstore.New(e.rdb, keys)
	e.putIntegration("acme-cloud", "")
	e.client = asynq.NewClientFromRedisClient(e.rdb)
	e.insp = asynq.NewInspectorFromRedisClient(e.rdb)
	t.Cleanup(func() {
		if d := e.fake.Disallowed(); len(d) > 0 {
			t.Errorf("the fake saw calls outside DESIGN §4: %+v", d)
		}
	})
	return e
}

func (e *env) putIntegration(id, editPolicy string) {
	e.t.Helper()
	err := e.store.Put(context.Background(), &credstore.Record{
		ID: id, Flavor: "cloud", CloudID: e.fake.CloudID(), EditPolicy: editPolicy,
		Auth: credstore.Auth{Kind: "oauth2", AccessToken: credstore.Secret(e.token), ExpiresAt: time.Now().Add(time.Hour)},
	})
	if err != nil {
		e.t.Fatalf("put integration: %v", err)
	}
}

// oauthConfig is the OAuth app the fake accepts, as the worker gets it
// from ATLASSIAN_CLIENT_ID/SECRET and ATLASSIAN_AUTH_URL/API_URL.
func (e *env) oauthConfig(hc *http.Client) credstore.OAuthConfig {
	id, secret := e.fake.ClientCredentials()
	return credstore.OAuthConfig{ClientID: id, ClientSecret: secret, AuthURL: e.fake.URL(), APIURL: e.fake.URL(), HTTPClient: hc}
}

// startWorker runs an in-process asynq server wired exactly as cmd/worker
// wires it (jobs.Register, jobs.RetryDelay, jobs.IsFailure).
func (e *env) startWorker(concurrency int) *asynq.Server {
	e.t.Helper()
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(e.logs), zap.DebugLevel))
	mux := asynq.NewServeMux()
	hc := confluence.NewHTTPClient(10*time.Second, concurrency, e.httpOpts...)
	tokens := credstore.NewTokens(e.store, e.oauthConfig(hc))
	jobs.Register(mux, &jobs.Publisher{
		Redis: e.rdb, Integrations: e.store, Log: log,
		Connect: jobs.NewConnector(e.fake.URL(), hc, tokens),
		// Attachment sources in tests are httptest servers on loopback.
		AttachmentURLHosts: []string{"127.0.0.1"}, AttachmentMaxBytes: e.maxAttachment,
		Downloads: jobs.NewDownloadClient(30*time.Second, e.httpOpts...),
		Outcomes:  &outcomes.Recorder{Redis: e.rdb, Seal: must(outcomes.NewSealer(e.keyring()))},
		Ownership: jobs.NewOwnership(e.keyring()),
	})
	if e.middleware != nil {
		mux.Use(e.middleware)
	}
	srv := asynq.NewServerFromRedisClient(e.rdb, asynq.Config{
		Concurrency:              concurrency,
		Queues:                   map[string]int{"critical": 6, "default": 3, "low": 1},
		TaskCheckInterval:        20 * time.Millisecond,
		DelayedTaskCheckInterval: time.Second,
		RetryDelayFunc: func(n int, err error, t *asynq.Task) time.Duration {
			// Same policy, squeezed so tests stay short.
			return min(jobs.RetryDelay(n, err, t), 1500*time.Millisecond)
		},
		IsFailure: jobs.IsFailure,
		Logger:    log.Sugar(),
		LogLevel:  asynq.WarnLevel,
	})
	if err := srv.Start(mux); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(srv.Shutdown)
	return srv
}

// enqueue puts a publish on the queue through the meeting service's API.
func (e *env) enqueue(p *jobs.PublishPayload) *jobs.EnqueueResult {
	e.t.Helper()
	res, err := jobs.EnqueuePublish(context.Background(), e.client, e.insp, p, jobs.EnqueueOptions{})
	if err != nil {
		e.t.Fatalf("enqueue: %v", err)
	}
	return res
}

// wait returns the task once it is completed or archived.
func (e *env) wait(queue, id string) *asynq.TaskInfo {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		info, err := e.insp.GetTaskInfo(queue, id)
		if err == nil && (info.State == asynq.TaskStateCompleted || info.State == asynq.TaskStateArchived) {
			return info
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("task %s not finished in time", id)
	return nil
}

func (e *env) publish(p *jobs.PublishPayload) *asynq.TaskInfo {
	e.t.Helper()
	res := e.enqueue(p)
	info := e.wait("default", res.TaskID)
	if info.State != asynq.TaskStateCompleted {
		e.t.Fatalf("task %s ended %s: %s", res.TaskID, info.State, info.LastErr)
	}
	return info
}

func (e *env) pagesTitled(title string) []confluencetest.Page {
	var out []confluencetest.Page
	for _, p := range e.fake.Pages("ENG") {
		if strings.EqualFold(p.Title, title) {
			out = append(out, p)
		}
	}
	return out
}

func (e *env) onePage(title string) confluencetest.Page {
	e.t.Helper()
	ps := e.pagesTitled(title)
	if len(ps) != 1 {
		e.t.Fatalf("want exactly one page %q, have %d\n%s", title, len(ps), e.fake.Tree("ENG"))
	}
	return ps[0]
}

func (e *env) writes() int { return e.fake.WriteCount() }

// retro builds a retrospective payload with n attachments.
func retro(id string, rev int64, n int) *jobs.PublishPayload {
	p := &jobs.PublishPayload{
		Schema: 1, EventID: "evt-" + id, IntegrationID: "acme-cloud",
		Report: jobs.Report{
			ID: id, Revision: rev, Kind: jobs.KindRetrospective, Title: "Retro " + id, Team: "Platform",
			HeldAt:   "2026-11-27T15:00:00Z",
			Sections: []jobs.Section{{Name: "Went well", Items: []jobs.Item{{Text: "CI is faster & <safer>", Votes: 4}}}},
			Actions:  []jobs.Action{{Text: "Pin Go", Assignee: "Lee", Due: "2026-12-05"}},
		},
		Target: jobs.Target{SpaceKey: "ENG"},
	}
	for i := 0; i < n; i++ {
		p.Attachments = append(p.Attachments, jobs.Attachment{
			Filename: fmt.Sprintf("file-%d.png", i), ContentType: "image/png",
			DataBase64: base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("png-%s-%d", id, i))),
		})
	}
	return p
}

// httpGet is a tiny helper for endpoint checks.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// keyring is the env's CREDSTORE_KEYS, parsed.
func (e *env) keyring() *credstore.Keyring {
	e.t.Helper()
	k, err := credstore.ParseKeys(e.keys)
	if err != nil {
		e.t.Fatal(err)
	}
	return k
}
