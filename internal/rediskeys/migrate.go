package rediskeys

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// MigrateReport is what Migrate did.
type MigrateReport struct {
	Scanned    int // retropub keys looked at
	Renamed    int // legacy keys now under their tagged name
	Superseded int // legacy keys dropped: the tagged twin was written since
}

// migrateScript moves one legacy key. KEYS: tagged, legacy. Returns 0 when
// the legacy key is gone already (a worker adopted it), 1 renamed, 2
// dropped because the tagged key exists: a worker of this version adopts
// before it writes, so the tagged twin is the newer.
var migrateScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('RENAME', KEYS[2], KEYS[1])
  return 1
end
redis.call('DEL', KEYS[2])
return 2`)

// Migrate renames every key of the legacy layout to its tagged name, one
// key per script, then marks the layout tagged. Workers of this version
// may run meanwhile: they adopt keys by the same rule (Fallback), and a
// rename keeps the value and its expiry, so a publish in flight sees its
// mapping and lock under one name or the other, never neither. Running it
// again changes nothing. A cluster never held the legacy layout: it is
// only marked.
func Migrate(ctx context.Context, rdb redis.UniversalClient) (MigrateReport, error) {
	var rep MigrateReport
	if _, cluster := rdb.(*redis.ClusterClient); !cluster {
		iter := rdb.Scan(ctx, 0, Prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rep.Scanned++
			legacy := iter.Val()
			tagged, ok := Tagged(legacy)
			if !ok {
				continue
			}
			n, err := migrateScript.Run(ctx, rdb, []string{tagged, legacy}).Int()
			if err != nil {
				return rep, fmt.Errorf("migrate %s: %w", legacy, err)
			}
			switch n {
			case 1:
				rep.Renamed++
			case 2:
				rep.Superseded++
			}
		}
		if err := iter.Err(); err != nil {
			return rep, fmt.Errorf("migrate: scan: %w", err)
		}
	}
	return rep, MarkTagged(ctx, rdb)
}
