// Package webhook delivers the outcome stream to OUTCOME_WEBHOOK_URL,
// signed as Standard Webhooks specify (DESIGN §10). Every worker process
// runs a Deliverer; together they read the stream through one consumer
// group, so each event goes to one of them, and a worker that dies with
// events in hand leaves them pending in the group, where another claims
// them. An event is acknowledged only after a 2xx answer: at least once.
package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.uber.org/zap"

	"retropub/outcomes"
)

// Group is the consumer group the fleet delivers through.
const Group = "retropub-webhooks"

// Delivery results, for metrics.
const (
	ResultDelivered = "delivered"
	ResultFailed    = "failed"  // to be retried
	ResultExpired   = "expired" // retried for MaxAge, then given up (left in the stream)
)

// Backoff bounds (DESIGN §10: from about 5 s, capped at 10 min).
const (
	backoffBase = 5 * time.Second
	backoffCap  = 10 * time.Minute
)

// Deliverer sends outcome events to one URL.
type Deliverer struct {
	Redis    redis.UniversalClient
	URL      string
	Secret   string        // whsec_<base64>
	MaxAge   time.Duration // how long an event is retried
	Consumer string        // this process's name in the group; unique
	Log      *zap.Logger
	// HTTP sends the requests; nil: a client with a 10 s timeout. Either
	// way redirects are not followed (a 3xx is a failed delivery).
	HTTP *http.Client
	// Parallel is how many deliveries one process runs at once (0: 8): a
	// slow receiver slows delivery, never a publish.
	Parallel int
	// Result and Oldest report to metrics (either may be nil).
	Result func(result string)
	Oldest func(age time.Duration)

	signer   *standardwebhooks.Webhook
	http     *http.Client
	inFlight sync.Map // entry ids being sent by this process
}

// init checks d's settings and builds its parts.
func (d *Deliverer) init() error {
	s, err := standardwebhooks.NewWebhook(d.Secret)
	if err != nil || !strings.HasPrefix(d.Secret, "whsec_") {
		return errors.New("webhook: OUTCOME_WEBHOOK_SECRET must be whsec_ followed by base64")
	}
	d.signer = s
	hc := d.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	d.http = &c
	if d.Parallel <= 0 {
		d.Parallel = 8
	}
	if d.MaxAge <= 0 {
		d.MaxAge = 24 * time.Hour
	}
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	return nil
}

// Run delivers until ctx ends. Redis errors are logged and retried: a
// Redis outage pauses delivery, it does not stop it.
func (d *Deliverer) Run(ctx context.Context) error {
	if err := d.init(); err != nil {
		return err
	}
	sem := make(chan struct{}, d.Parallel)
	var wg sync.WaitGroup
	defer wg.Wait()
	d.ensureGroup(ctx)
	go d.retryLoop(ctx, sem, &wg)
	for ctx.Err() == nil {
		streams, err := d.Redis.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: Group, Consumer: d.Consumer, Streams: []string{outcomes.StreamKey, ">"},
			Count: int64(d.Parallel), Block: 2 * time.Second,
		}).Result()
		switch {
		case errors.Is(err, redis.Nil):
			continue
		case err != nil && isNoGroup(err):
			d.ensureGroup(ctx)
			continue
		case err != nil:
			if ctx.Err() == nil {
				d.Log.Warn("webhook: read outcome stream", zap.Error(err))
				sleep(ctx, time.Second)
			}
			continue
		}
		for _, s := range streams {
			for _, m := range s.Messages {
				d.dispatch(ctx, sem, &wg, m, 1)
			}
		}
	}
	return nil
}

// dispatch delivers m in the background, at most Parallel at a time.
func (d *Deliverer) dispatch(ctx context.Context, sem chan struct{}, wg *sync.WaitGroup, m redis.XMessage, attempt int64) {
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	if _, busy := d.inFlight.LoadOrStore(m.ID, true); busy {
		<-sem
		return // still being sent here (a slow receiver)
	}
	wg.Add(1)
	go func() {
		defer func() { d.inFlight.Delete(m.ID); <-sem; wg.Done() }()
		d.deliver(ctx, m, attempt)
	}()
}

// ensureGroup creates the consumer group (and the stream) if missing;
// it starts at the stream's beginning, so no event written before is
// skipped (those past MaxAge are given up at once). Another process
// deleting the group makes it be created again, not a crash loop.
func (d *Deliverer) ensureGroup(ctx context.Context) {
	err := d.Redis.XGroupCreateMkStream(ctx, outcomes.StreamKey, Group, "0").Err()
	if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
		d.Log.Warn("webhook: create consumer group", zap.Error(err))
		sleep(ctx, time.Second)
		return
	}
	if err == nil {
		d.Log.Info("webhook: consumer group created", zap.String("group", Group))
	}
}

func isNoGroup(err error) bool { return strings.HasPrefix(err.Error(), "NOGROUP") }

// deliver sends m once and acknowledges it on a 2xx answer, or when it is
// older than MaxAge. A failure leaves it pending for retryLoop.
func (d *Deliverer) deliver(ctx context.Context, m redis.XMessage, attempt int64) {
	if age := entryAge(m.ID); age > d.MaxAge {
		d.ack(ctx, m.ID, ResultExpired)
		d.Log.Warn("webhook: event given up after OUTCOME_WEBHOOK_MAX_AGE", zap.String("entry", m.ID), zap.Duration("age", age))
		return
	}
	body, _ := m.Values[outcomes.StreamField].(string)
	ev, err := outcomes.DecodeEvent(body)
	if err != nil || ev.ID == "" {
		// Not ours to judge further: an entry another writer added. It can
		// never be signed meaningfully; skip it for good.
		d.ack(ctx, m.ID, ResultExpired)
		d.Log.Warn("webhook: stream entry without an outcome event skipped", zap.String("entry", m.ID))
		return
	}
	if err := d.send(ctx, ev.ID, []byte(body)); err != nil {
		d.count(ResultFailed)
		d.Log.Info("webhook: delivery failed; will retry", zap.String("event", ev.ID), zap.Int64("attempt", attempt), zap.Error(err))
		return
	}
	d.ack(ctx, m.ID, ResultDelivered)
}

func (d *Deliverer) send(ctx context.Context, id string, body []byte) error {
	now := time.Now()
	sig, err := d.signer.Sign(id, now, body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(standardwebhooks.HeaderWebhookID, id)
	req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(standardwebhooks.HeaderWebhookSignature, sig)
	resp, err := d.http.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("receiver answered %s", resp.Status)
	}
	return nil
}

func (d *Deliverer) ack(ctx context.Context, id, result string) {
	// Acknowledged even when ctx ends: the delivery happened.
	if err := d.Redis.XAck(context.WithoutCancel(ctx), outcomes.StreamKey, Group, id).Err(); err != nil {
		// Pending still: it will be delivered again (receivers de-duplicate).
		d.Log.Warn("webhook: acknowledge", zap.String("entry", id), zap.Error(err))
	}
	d.count(result)
}

func (d *Deliverer) count(result string) {
	if d.Result != nil {
		d.Result(result)
	}
}

// retryLoop looks at the group's pending entries every second: an entry
// idle for longer than its backoff (failed here, or held by a worker that
// died) is claimed, which only one process wins, and delivered again. It
// also measures the oldest undelivered event.
func (d *Deliverer) retryLoop(ctx context.Context, sem chan struct{}, wg *sync.WaitGroup) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pending, err := d.Redis.XPendingExt(ctx, &redis.XPendingExtArgs{
			Stream: outcomes.StreamKey, Group: Group, Idle: backoffBase, Start: "-", End: "+", Count: 100,
		}).Result()
		if err != nil {
			if ctx.Err() == nil && !isNoGroup(err) {
				d.Log.Debug("webhook: list pending", zap.Error(err))
			}
			continue
		}
		for _, p := range pending {
			if _, busy := d.inFlight.Load(p.ID); busy || p.Idle < backoff(p.RetryCount) {
				continue
			}
			// XCLAIM with a minimum idle time: if another process claimed
			// it meanwhile, its idle time was reset and we get nothing.
			msgs, err := d.Redis.XClaim(ctx, &redis.XClaimArgs{
				Stream: outcomes.StreamKey, Group: Group, Consumer: d.Consumer, MinIdle: p.Idle - 100*time.Millisecond, Messages: []string{p.ID},
			}).Result()
			if err != nil {
				continue
			}
			for _, m := range msgs {
				d.dispatch(ctx, sem, wg, m, p.RetryCount+1)
			}
		}
		d.measureOldest(ctx)
	}
}

// backoff is the wait before attempt n+1 of a delivery tried n times:
// 5 s doubling, capped at 10 min, with up to a fifth more of jitter.
func backoff(n int64) time.Duration {
	b := backoffCap
	if n < 8 {
		b = min(backoffBase<<max(n-1, 0), backoffCap)
	}
	return b + time.Duration(rand.Int64N(int64(b/5)+1))
}

// measureOldest reports the age of the oldest event not yet delivered:
// the oldest pending entry, or the first the group has not read yet.
func (d *Deliverer) measureOldest(ctx context.Context) {
	if d.Oldest == nil {
		return
	}
	var oldest string
	if sum, err := d.Redis.XPending(ctx, outcomes.StreamKey, Group).Result(); err == nil && sum.Count > 0 {
		oldest = sum.Lower
	}
	if oldest == "" {
		groups, err := d.Redis.XInfoGroups(ctx, outcomes.StreamKey).Result()
		if err != nil {
			return
		}
		for _, g := range groups {
			if g.Name != Group {
				continue
			}
			next, err := d.Redis.XRangeN(ctx, outcomes.StreamKey, "("+g.LastDeliveredID, "+", 1).Result()
			if err == nil && len(next) > 0 {
				oldest = next[0].ID
			}
		}
	}
	if oldest == "" {
		d.Oldest(0)
		return
	}
	d.Oldest(entryAge(oldest))
}

// entryAge is how long ago a stream entry was added (its id's time part).
func entryAge(id string) time.Duration {
	ms, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return 0
	}
	return time.Since(time.UnixMilli(n))
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
