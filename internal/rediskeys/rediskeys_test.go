package rediskeys

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// slot is Redis Cluster's key slot: CRC16 (XMODEM) of the hash tag, or of
// the whole key when it has none, mod 16384.
func slot(key string) int {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			key = key[s+1 : s+1+e]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}

func TestSlotMatchesRedis(t *testing.T) {
	// Values from the Redis Cluster specification and CLUSTER KEYSLOT.
	for key, want := range map[string]int{"123456789": 12739, "{user1000}.following": slot("user1000"), "foo": 12182} {
		if got := slot(key); got != want {
			t.Errorf("slot(%q) = %d, want %d", key, got, want)
		}
	}
}

// Every key one script or transaction shares sits in one slot, whatever
// the report, title or instance; the legacy name converts both ways.
func TestKeysOfOneIntegrationShareASlot(t *testing.T) {
	const id = "acme-cloud"
	perIntegration := []string{
		Mapping(id, "r-1"), ReportLock(id, "r-1"), Space(id, "ENG"),
		Parent(id, "123", "", "retro {x}: a:b}"), ParentLock(id, "123", "retro {x}"),
		Active(id), Waiting(id), Record(id), RefreshLock(id),
	}
	for _, k := range perIntegration {
		if slot(k) != slot(Record(id)) {
			t.Errorf("%s is in slot %d, the record in %d", k, slot(k), slot(Record(id)))
		}
		old, ok := Legacy(k)
		if !ok || strings.Contains(old, "{"+id+"}") {
			t.Errorf("Legacy(%s) = %q, %v", k, old, ok)
			continue
		}
		if back, ok := Tagged(old); !ok || back != k {
			t.Errorf("Tagged(%s) = %q, %v; want %s", old, back, ok, k)
		}
	}
	if slot(ForIntegration("status", id, "r-9")) != slot(Record(id)) {
		t.Error("a new per-integration key is in another slot")
	}
	for _, inst := range []string{"cloud:abc-123", "server:wiki.example.com:8443/con}fl{uence"} {
		keys := []string{Gate(inst, "cooldown"), Gate(inst, "breaker"), Gate(inst, "gcra"), Gate(inst, "inflight")}
		for _, k := range keys {
			if slot(k) != slot(keys[0]) {
				t.Errorf("%s and %s are in different slots", k, keys[0])
			}
			old, _ := Legacy(k)
			if back, ok := Tagged(old); !ok || back != k {
				t.Errorf("Tagged(%s) = %q, %v; want %s", old, back, ok, k)
			}
		}
	}
	if slot(CloudPoints) != slot(CloudPause) {
		t.Error("the points budget and the quota pause are in different slots")
	}
	for _, k := range []string{Integrations, Ready, Layout, Deferrals("pub:x"), "asynq:{default}:pending", Mapping(id, "r")} {
		if got, ok := Tagged(k); ok {
			t.Errorf("Tagged(%s) = %s, want no rename", k, got)
		}
	}
}

// legacyDB fills a database the way the code before the tags did.
func legacyDB(t *testing.T) (*miniredis.Miniredis, *redis.Client) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	rdb.SAdd(ctx, "retropub:integrations", "acme")
	rdb.Set(ctx, "retropub:integration:acme", `{"id":"acme"}`, 0)
	rdb.HSet(ctx, "retropub:map:acme:r1", "page_id", "42", "revision", "3")
	rdb.HSet(ctx, "retropub:map:acme:r2", "page_id", "43", "revision", "1")
	rdb.Set(ctx, "retropub:lock:report:acme:r2", "task-1", time.Minute)
	rdb.HSet(ctx, "retropub:space:acme:ENG", "id", "7")
	rdb.Set(ctx, "retropub:parent:acme:7::retrospectives", "99", time.Hour)
	rdb.Set(ctx, "retropub:gate:cloud:abc:cooldown", "1", time.Minute)
	rdb.HSet(ctx, "retropub:gate:cloud:points", "used", "5")
	return mr, rdb
}

func TestFallbackAdoptsBeforeMigrate(t *testing.T) {
	_, rdb := legacyDB(t)
	ctx := context.Background()
	f := NewFallback(rdb)
	if !f.Active(ctx) {
		t.Fatal("a database with legacy integrations needs the fallback")
	}
	if err := f.Adopt(ctx, ReportLock("acme", "r2"), Mapping("acme", "r2")); err != nil {
		t.Fatal(err)
	}
	if v := rdb.HGet(ctx, Mapping("acme", "r2"), "page_id").Val(); v != "43" {
		t.Fatalf("adopted mapping page_id = %q", v)
	}
	if ttl := rdb.PTTL(ctx, ReportLock("acme", "r2")).Val(); ttl <= 0 || rdb.Get(ctx, ReportLock("acme", "r2")).Val() != "task-1" {
		t.Fatalf("adopted lock lost its holder or expiry (ttl %s)", ttl)
	}
	if rdb.Exists(ctx, "retropub:map:acme:r2").Val() != 0 {
		t.Fatal("the legacy mapping still exists beside the adopted one")
	}
	// A tagged key written since is newer: adopting leaves it alone.
	rdb.HSet(ctx, Mapping("acme", "r1"), "page_id", "42", "revision", "4")
	if err := f.Adopt(ctx, Mapping("acme", "r1")); err != nil {
		t.Fatal(err)
	}
	if v := rdb.HGet(ctx, Mapping("acme", "r1"), "revision").Val(); v != "4" {
		t.Fatalf("revision = %s", v)
	}
}

func TestMigrateRenamesOnceAndIsIdempotent(t *testing.T) {
	_, rdb := legacyDB(t)
	ctx := context.Background()
	rdb.HSet(ctx, Mapping("acme", "r1"), "page_id", "42", "revision", "4") // adopted meanwhile, then rewritten
	rep, err := Migrate(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Renamed != 7 || rep.Superseded != 1 {
		t.Fatalf("first run: %+v", rep)
	}
	keys := rdb.Keys(ctx, "retropub:*").Val()
	for _, k := range keys {
		if _, ok := Tagged(k); ok {
			t.Errorf("legacy key %s left", k)
		}
	}
	for k, want := range map[string]string{
		Mapping("acme", "r2"): "43", Space("acme", "ENG"): "7",
	} {
		if got := rdb.HGet(ctx, k, map[bool]string{true: "page_id", false: "id"}[strings.Contains(k, ":map:")]).Val(); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if rdb.Get(ctx, Record("acme")).Val() != `{"id":"acme"}` || rdb.Get(ctx, Parent("acme", "7", "", "retrospectives")).Val() != "99" {
		t.Error("record or parent cache not reachable under the new name")
	}
	if rdb.HGet(ctx, CloudPoints, "used").Val() != "5" {
		t.Error("the points budget is not reachable under its new name")
	}
	if NewFallback(rdb).Active(ctx) {
		t.Error("fallback still active after migrate")
	}
	before := rdb.Keys(ctx, "*").Val()
	rep, err = Migrate(ctx, rdb)
	if err != nil || rep.Renamed != 0 || rep.Superseded != 0 {
		t.Fatalf("second run: %+v, %v", rep, err)
	}
	if after := rdb.Keys(ctx, "*").Val(); len(after) != len(before) {
		t.Fatalf("second run changed the keys: %v → %v", before, after)
	}
}

func TestNewDatabaseNeedsNoFallback(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	if NewFallback(rdb).Active(context.Background()) {
		t.Fatal("an empty database needs no fallback")
	}
	if v, _ := mr.Get(Layout); v != LayoutTagged {
		t.Fatalf("layout = %q", v)
	}
	var f *Fallback
	if f.Active(context.Background()) || f.Adopt(context.Background(), Mapping("a", "b")) != nil {
		t.Fatal("a nil Fallback adopts nothing")
	}
}
