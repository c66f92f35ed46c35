package test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"retropub/outcomes"
)

// Must-show 2: outcome webhooks through real worker processes, checked by
// a receiver on loopback that verifies every signature with its own
// implementation of the Standard Webhooks specification.

const webhookSecret = "whsec_dGVzdC13ZWJob29rLWtleS1vZi0zMi1ieXRlcy0wMDAwMDA="

// checkSignature is the receiver's own reading of the specification:
// HMAC-SHA256 keyed with the base64 after whsec_, over
// "<webhook-id>.<webhook-timestamp>.<body>", sent base64 after "v1,";
// several signatures may be sent, space-separated.
func checkSignature(h http.Header, body []byte) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(webhookSecret, "whsec_"))
	if err != nil {
		return err
	}
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	if id == "" || ts == "" {
		return fmt.Errorf("missing webhook-id or webhook-timestamp")
	}
	var sec int64
	if _, err := fmt.Sscan(ts, &sec); err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return fmt.Errorf("timestamp %q is not within 5 minutes", ts)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, sig := range strings.Split(h.Get("webhook-signature"), " ") {
		if b64, ok := strings.CutPrefix(sig, "v1,"); ok {
			if got, err := base64.StdEncoding.DecodeString(b64); err == nil && hmac.Equal(got, want) {
				return nil
			}
		}
	}
	return fmt.Errorf("no signature matches")
}

// hookReceiver accepts events whose signature checks out; mode decides
// what it answers before that.
type hookReceiver struct {
	mu       sync.Mutex
	got      map[string]int // event id → deliveries accepted
	bad      []string
	mode     atomic.Value // "ok", "503", "hold"
	answered atomic.Int64 // non-2xx answers
	held     atomic.Int64 // requests being held
	release  chan struct{}
	srv      *http.Server
}

func newHookReceiver(mode string) *hookReceiver {
	rc := &hookReceiver{got: map[string]int{}, release: make(chan struct{})}
	rc.mode.Store(mode)
	return rc
}

func (rc *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	switch rc.mode.Load().(string) {
	case "503":
		rc.answered.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	case "hold":
		rc.held.Add(1)
		<-rc.release
		rc.answered.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if err := checkSignature(r.Header, body); err != nil {
		rc.mu.Lock()
		rc.bad = append(rc.bad, err.Error())
		rc.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var ev outcomes.Event
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID != r.Header.Get("webhook-id") {
		rc.mu.Lock()
		rc.bad = append(rc.bad, fmt.Sprintf("body id %q vs header %q (%v)", ev.ID, r.Header.Get("webhook-id"), err))
		rc.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	rc.got[ev.ID]++
	rc.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// listen starts serving on port (the workers have been refused until now).
func (rc *hookReceiver) listen(t *testing.T, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	rc.srv = &http.Server{Handler: rc}
	go rc.srv.Serve(ln)
	t.Cleanup(func() {
		select {
		case <-rc.release:
		default:
			close(rc.release)
		}
		rc.srv.Close()
	})
}

// missing lists the stream's event ids the receiver has not accepted.
func (rc *hookReceiver) missing(t *testing.T, e *env) []string {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []string
	for _, ev := range streamEvents(t, e.rdb) {
		if rc.got[ev.ID] == 0 {
			out = append(out, ev.ID)
		}
	}
	return out
}

func (rc *hookReceiver) waitAll(t *testing.T, e *env, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		n := len(streamEvents(t, e.rdb))
		m := rc.missing(t, e)
		if n >= want && len(m) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events not delivered in %s: %v", len(m), n, within, m)
		}
		time.Sleep(200 * time.Millisecond)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.bad) > 0 {
		t.Fatalf("%d deliveries failed the receiver's checks: %v", len(rc.bad), rc.bad)
	}
}

func webhookEnv(port int) []string {
	return []string{fmt.Sprintf("OUTCOME_WEBHOOK_URL=http://127.0.0.1:%d/hook", port), "OUTCOME_WEBHOOK_SECRET=" + webhookSecret}
}

// The receiver refuses connections while the reports publish, then
// answers 503 while the redis-server (appendonly) restarts, then
// recovers: every event in the stream arrives, each signature checks out.
func TestWebhookRefusedThen503ThenRedisRestart(t *testing.T) {
	t.Parallel()
	rs, e := aofRedisEnv(t, freePort(t))
	port := freePort(t)
	rc := newHookReceiver("503")
	e.startWorkers(2, webhookEnv(port)...)
	ids := e.enqueueMany("acme-cloud", "hook", 12)
	e.waitCompleted("default", ids, 2*time.Minute)

	rc.listen(t, port) // refused until now
	deadline := time.Now().Add(time.Minute)
	for rc.answered.Load() < 12 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d deliveries reached the receiver answering 503", rc.answered.Load())
		}
		time.Sleep(100 * time.Millisecond)
	}
	rs.terminate(t)
	rs.start(t)
	rc.mode.Store("ok")
	rc.waitAll(t, e, 12, 2*time.Minute)
}

// A worker SIGKILLed while its deliveries hang: the events it held are
// pending in the consumer group, and another worker delivers them.
func TestWebhookWorkerKilledWhileDelivering(t *testing.T) {
	e := newParallelEnv(t, 3)
	port := freePort(t)
	rc := newHookReceiver("hold")
	rc.listen(t, port)
	victim := e.startWorkers(1, webhookEnv(port)...)[0]
	ids := e.enqueueMany("acme-cloud", "kill", 6)
	e.waitCompleted("default", ids, 2*time.Minute)
	deadline := time.Now().Add(time.Minute)
	for rc.held.Load() < 6 {
		if time.Now().After(deadline) {
			t.Fatalf("the worker holds %d deliveries, want 6", rc.held.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-victim.done
	rc.mode.Store("ok")
	close(rc.release)
	e.startWorkers(1, webhookEnv(port)...)
	rc.waitAll(t, e, 6, time.Minute)
	if n, _ := e.rdb.XPending(context.Background(), outcomes.StreamKey, "retropub-webhooks").Result(); n != nil && n.Count != 0 {
		t.Fatalf("%d events still pending", n.Count)
	}
}
