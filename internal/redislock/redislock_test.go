package redislock

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

func TestOwnerTakesOverOthersWaitOnlyOwnerReleases(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	a, b := New(rdb, "k", "a"), New(rdb, "k", "b")
	if err := a.Acquire(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := a.Acquire(ctx, time.Minute); err != nil {
		t.Fatalf("the owner could not take its own lock again: %v", err)
	}
	if err := b.Acquire(ctx, time.Minute); !errors.Is(err, ErrHeld) {
		t.Fatalf("another owner got %v, want ErrHeld", err)
	}
	if err := b.Release(ctx); err != nil || mr.Exists("k") == false {
		t.Fatalf("another owner released the lock (err %v)", err)
	}
	if err := a.Release(ctx); err != nil || mr.Exists("k") {
		t.Fatalf("the owner's release left the lock (err %v)", err)
	}
	if err := b.Acquire(ctx, time.Second); err != nil {
		t.Fatalf("free lock refused: %v", err)
	}
	mr.FastForward(2 * time.Second)
	if err := a.Acquire(ctx, time.Minute); err != nil {
		t.Fatalf("expired lock refused: %v", err)
	}
}
