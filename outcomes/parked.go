package outcomes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Parked is a publish waiting for a person: the latest revision's payload
// of one report, why it waits and since when.
type Parked struct {
	IntegrationID string    `json:"integration_id"`
	ReportID      string    `json:"report_id"`
	Revision      int64     `json:"revision"`
	Reason        string    `json:"reason"` // an error class
	Message       string    `json:"message"`
	ParkedAt      time.Time `json:"parked_at"`
	TaskID        string    `json:"task_id"`
}

var parkedFields = []string{"revision", "reason", "message", "parked_at", "task_id"}

func parkedFrom(integration, report string, v []any) *Parked {
	if len(v) != len(parkedFields) || v[1] == nil {
		return nil
	}
	s := func(i int) string { x, _ := v[i].(string); return x }
	p := &Parked{IntegrationID: integration, ReportID: report, Reason: s(1), Message: s(2), TaskID: s(4)}
	p.Revision, _ = strconv.ParseInt(s(0), 10, 64)
	p.ParkedAt, _ = time.Parse(time.RFC3339Nano, s(3))
	return p
}

// ParkedIntegrations lists the integrations that may have parked reports.
func (s *Store) ParkedIntegrations(ctx context.Context) ([]string, error) {
	ids, err := s.Redis.SMembers(ctx, parkedIntegrationsKey).Result()
	if err != nil {
		return nil, fmt.Errorf("list integrations with parked reports: %w", err)
	}
	slices.Sort(ids)
	return ids, nil
}

// ListParked lists integration's parked reports, oldest first; an empty
// integration lists every integration's.
func (s *Store) ListParked(ctx context.Context, integration string) ([]Parked, error) {
	ids := []string{integration}
	if integration == "" {
		var err error
		if ids, err = s.ParkedIntegrations(ctx); err != nil {
			return nil, err
		}
	}
	var out []Parked
	for _, id := range ids {
		reports, err := s.Redis.ZRange(ctx, parkedIndexKey(id), 0, -1).Result()
		if err != nil {
			return nil, fmt.Errorf("list parked reports of %s: %w", id, err)
		}
		for chunk := range slices.Chunk(reports, 1000) {
			pipe := s.Redis.Pipeline()
			cmds := make([]*redis.SliceCmd, len(chunk))
			for i, r := range chunk {
				cmds[i] = pipe.HMGet(ctx, parkedKey(id, r), parkedFields...)
			}
			if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
				return nil, fmt.Errorf("read parked reports of %s: %w", id, err)
			}
			for i, c := range cmds {
				if p := parkedFrom(id, chunk[i], c.Val()); p != nil {
					out = append(out, *p)
				}
			}
		}
	}
	return out, nil
}

// discardScript forgets one parked publish.
// K: parked, index, reasons. A: report id.
var discardScript = redis.NewScript(`
local reason = redis.call('HGET', KEYS[1], 'reason')
if not reason then return 0 end
redis.call('HINCRBY', KEYS[3], reason, -1)
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1`)

// Discard forgets a parked publish; ErrNotFound when none is parked.
func (s *Store) Discard(ctx context.Context, integration, report string) error {
	n, err := discardScript.Run(ctx, s.Redis, []string{parkedKey(integration, report), parkedIndexKey(integration),
		parkedReasonsKey(integration)}, report).Int()
	if err != nil {
		return fmt.Errorf("discard parked report %s/%s: %w", integration, report, err)
	}
	if n == 0 {
		return fmt.Errorf("parked report %s of integration %s: %w", report, integration, ErrNotFound)
	}
	return nil
}

// replayScript takes a parked payload to run again and starts a new
// generation of the report's outcomes, so the replay's outcome gets an
// id of its own. The parked record stays until a publish clears it.
// K: parked, status. Returns false when nothing is parked, else {payload, gen}.
var replayScript = redis.NewScript(`
local payload = redis.call('HGET', KEYS[1], 'payload')
if not payload then return false end
local gen = redis.call('HINCRBY', KEYS[2], 'gen', 1)
return {payload, gen}`)

// Replay is what running a parked publish again needs.
type Replay struct {
	Payload    []byte
	Generation int64 // makes the replay's task id and outcome id new
}

// TakeReplay prepares a parked publish for running again; ErrNotFound
// when it is no longer parked (published or discarded meanwhile).
func (s *Store) TakeReplay(ctx context.Context, integration, report string) (*Replay, error) {
	res, err := replayScript.Run(ctx, s.Redis, []string{parkedKey(integration, report), ReportStatusKey(integration, report)}).Slice()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("parked report %s of integration %s: %w", report, integration, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("replay parked report %s/%s: %w", integration, report, err)
	}
	payload, _ := res[0].(string)
	gen, _ := res[1].(int64)
	data := []byte(payload)
	if s.Seal != nil {
		if data, err = s.Seal.open(integration, report, data); err != nil {
			return nil, err
		}
	}
	return &Replay{Payload: data, Generation: gen}, nil
}

// ParkedByReason counts every integration's parked reports by reason, for
// the metric.
func (s *Store) ParkedByReason(ctx context.Context) (map[string]int64, error) {
	ids, err := s.ParkedIntegrations(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	pipe := s.Redis.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, parkedReasonsKey(id))
	}
	if len(ids) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("count parked reports: %w", err)
		}
	}
	for _, c := range cmds {
		for k, v := range c.Val() {
			n, _ := strconv.ParseInt(v, 10, 64)
			out[k] += n
		}
	}
	return out, nil
}
