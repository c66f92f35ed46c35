package credstore_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"retropub/confluence/confluencetest"
	"retropub/credstore"
	"retropub/internal/rediskeys"
)

// beforeLock runs fn once, just before the client sends the first command
// that names key (taking the refresh lock), so a test can put another
// worker's whole refresh between this worker's read and its lock.
type beforeLock struct {
	key  string
	once sync.Once
	fn   func()
}

func (h *beforeLock) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *beforeLock) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *beforeLock) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		for _, a := range cmd.Args() {
			if s, ok := a.(string); ok && s == h.key && strings.HasPrefix(strings.ToLower(cmd.Name()), "eval") {
				h.once.Do(h.fn)
				break
			}
		}
		return next(ctx, cmd)
	}
}

// Worker A reads the expired record; before A takes the refresh lock,
// worker B refreshes (retiring the stored refresh token). A must read the
// record again under the lock and use B's token: a second refresh would
// send a retired refresh token and lock the integration out.
func TestRefreshRereadsTheRecordUnderTheLock(t *testing.T) {
	t.Parallel()
	b := setupOAuth(t, confluencetest.Options{})
	_, rt0 := b.putExpired(t, "acme")
	rec := b.get(t, "acme")

	var bTok string
	hook := &beforeLock{key: rediskeys.RefreshLock("acme"), fn: func() {
		tok, err := credstore.NewTokens(b.store, b.cfg).Source(rec).Token(context.Background())
		if err != nil {
			t.Errorf("worker B: %v", err)
		}
		bTok = tok.Reveal()
	}}
	rdbA := redis.NewClient(&redis.Options{Addr: b.mr.Addr(), MaxRetries: -1})
	defer rdbA.Close()
	rdbA.AddHook(hook)
	storeA := credstore.New(rdbA, b.keys)

	tok, err := credstore.NewTokens(storeA, b.cfg).Source(rec).Token(context.Background())
	if err != nil {
		t.Fatalf("worker A: %v", err)
	}
	if bTok == "" {
		t.Fatal("worker B never ran: the hook did not see the refresh lock")
	}
	if tok.Reveal() != bTok {
		t.Error("worker A did not use the token worker B refreshed")
	}
	log := b.fake.RefreshLog()
	if len(log) != 1 || log[0].RefreshToken != rt0 {
		t.Errorf("refresh log %+v, want B's one refresh", log)
	}
	if err := b.fake.CheckRefreshTokensUsedOnce(); err != nil {
		t.Error(err)
	}
	if after := b.get(t, "acme"); after.Status.NeedsReauth {
		t.Errorf("integration marked needs_reauth: %s", after.Status.Reason)
	}
}
