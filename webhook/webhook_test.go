package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"retropub/outcomes"
)

// The specification's own example (standard-webhooks spec, "Signature
// scheme"): the library's signature must match it byte for byte.
func TestSignatureMatchesTheSpecificationExample(t *testing.T) {
	wh, err := standardwebhooks.NewWebhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	sig, err := wh.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; sig != want {
		t.Fatalf("signature %q, want %q", sig, want)
	}
	if got := verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", []byte(`{"test": 2432232314}`), sig); got != nil {
		t.Fatalf("the test's own verifier refuses the example: %v", got)
	}
}

// verify is the receiver's own implementation of the specification, not
// the library's: HMAC-SHA256 over id.timestamp.body, base64, "v1," first,
// any of several space-separated signatures.
func verify(secret, id, ts string, body []byte, header string) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.", id, ts)
	mac.Write(body)
	want := mac.Sum(nil)
	for _, s := range strings.Fields(header) {
		v, b64, ok := strings.Cut(s, ",")
		got, err := base64.StdEncoding.DecodeString(b64)
		if ok && v == "v1" && err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("no valid v1 signature in %q", header)
}

func newRedis(t *testing.T, db int) redis.UniversalClient {
	t.Helper()
	if u := os.Getenv("REDIS_URL"); u != "" {
		opt, err := redis.ParseURL(u)
		if err != nil {
			t.Fatal(err)
		}
		opt.DB = db
		rdb := redis.NewClient(opt)
		if err := rdb.FlushDB(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rdb.Close() })
		return rdb
	}
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

const secret = "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0xMjM0NTY="

// receiver records the event ids it accepted, after checking each
// signature; fail decides the status of each request before checking.
type receiver struct {
	t    *testing.T
	mu   sync.Mutex
	got  map[string]int
	bad  atomic.Int64
	fail func(n int64) int
	n    atomic.Int64
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := rc.n.Add(1)
	if code := rc.fail(n); code != 0 {
		w.WriteHeader(code)
		return
	}
	body, _ := io.ReadAll(r.Body)
	id := r.Header.Get("webhook-id")
	if err := verify(secret, id, r.Header.Get("webhook-timestamp"), body, r.Header.Get("webhook-signature")); err != nil {
		rc.bad.Add(1)
		w.WriteHeader(400)
		return
	}
	var ev outcomes.Event
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID != id {
		rc.bad.Add(1)
		w.WriteHeader(400)
		return
	}
	rc.mu.Lock()
	rc.got[id]++
	rc.mu.Unlock()
	w.WriteHeader(204)
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.got)
}

func record(t *testing.T, rdb redis.UniversalClient, n int) {
	t.Helper()
	rec := &outcomes.Recorder{Redis: rdb}
	for i := range n {
		_, err := rec.RecordReport(context.Background(), &outcomes.Report{TaskID: fmt.Sprintf("task-%d", i), Type: outcomes.TypePublished,
			IntegrationID: "acme", ReportID: fmt.Sprintf("r%d", i), Revision: 1})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func waitFor(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Failed deliveries are retried until the receiver takes them; the
// consumer group deleted meanwhile is created again.
func TestDeliveryRetriesAndSurvivesADeletedGroup(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t, 10)
	rc := &receiver{t: t, got: map[string]int{}, fail: func(n int64) int {
		if n <= 5 {
			return 503
		}
		return 0
	}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	record(t, rdb, 5)
	var results sync.Map
	d := &Deliverer{Redis: rdb, URL: srv.URL, Secret: secret, Consumer: "c1", Result: func(r string) {
		v, _ := results.LoadOrStore(r, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, 30*time.Second, "5 events delivered after 503s", func() bool { return rc.count() == 5 })

	if err := rdb.XGroupDestroy(context.Background(), outcomes.StreamKey, Group).Err(); err != nil {
		t.Fatal(err)
	}
	record(t, rdb, 8) // 3 new ones (task-5..7); the first 5 repeat nothing
	waitFor(t, 30*time.Second, "events after the group was deleted", func() bool { return rc.count() == 8 })
	if rc.bad.Load() != 0 {
		t.Fatalf("%d requests failed signature checks", rc.bad.Load())
	}
	if v, ok := results.Load(ResultFailed); !ok || v.(*atomic.Int64).Load() < 5 {
		t.Fatalf("failed deliveries not counted")
	}
}

// Events older than MaxAge are given up (counted, left in the stream).
func TestExpiredEventsAreGivenUp(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t, 11)
	rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: outcomes.StreamKey, ID: fmt.Sprintf("%d-0", time.Now().Add(-2*time.Hour).UnixMilli()),
		Values: []string{outcomes.StreamField, `{"id":"old","type":"report.published"}`}})
	rc := &receiver{t: t, got: map[string]int{}, fail: func(int64) int { return 0 }}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	var expired atomic.Int64
	d := &Deliverer{Redis: rdb, URL: srv.URL, Secret: secret, Consumer: "c1", MaxAge: time.Hour, Result: func(r string) {
		if r == ResultExpired {
			expired.Add(1)
		}
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, 10*time.Second, "the old event given up", func() bool { return expired.Load() == 1 })
	if rc.n.Load() != 0 {
		t.Fatal("an expired event was sent")
	}
	if n, _ := rdb.XLen(context.Background(), outcomes.StreamKey).Result(); n != 1 {
		t.Fatalf("stream holds %d entries, want the expired one kept", n)
	}
}
