package outcomes

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultMaxLen is OUTCOME_STREAM_MAXLEN's default: the stream is trimmed
// approximately to this many entries.
const DefaultMaxLen = 1_000_000

// statusTTL is how long a status lives without news when the caller
// gives none: a mapping's life.
const statusTTL = 400 * 24 * time.Hour

// Recorder writes outcomes. It is safe for concurrent use.
type Recorder struct {
	Redis  redis.UniversalClient
	MaxLen int64            // stream length kept; 0: DefaultMaxLen
	Now    func() time.Time // nil: time.Now
	// Observe, when set, is told the type of every event written (not of
	// a re-run's repeat, which writes nothing): the outcomes metric.
	Observe func(eventType string)
	// Seal seals parked payloads; nil stores them as they are (tests).
	Seal *Sealer
}

func (r *Recorder) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC()
	}
	return time.Now().UTC()
}

func (r *Recorder) maxLen() int64 {
	if r.MaxLen > 0 {
		return r.MaxLen
	}
	return DefaultMaxLen
}

// Report is one ended publish task.
type Report struct {
	TaskID        string
	Type          string // TypePublished … TypeParked
	IntegrationID string
	ReportID      string
	Revision      int64
	EventID       string
	Page          *Page  // when a page exists
	Error         *Error // TypeParked
	// Payload is the task's payload, kept while parked (TypeParked only).
	Payload []byte
	// StatusTTL is how long the report's status lives: its mapping's life.
	StatusTTL time.Duration
}

// reportLua records a report's outcome; it is a Lua function so that the
// publish path can run it inside its own mapping script (ScriptWith).
//
// The event id is the task id plus the report's replay generation: a
// re-run of the same task (a crash before asynq heard of the end) finds
// that id among the last runs recorded and writes nothing, whatever its
// outcome would now be; a replay of a parked report bumps the generation.
//
// K: status, stream, parked, parked index, integration status, parked reasons.
// A: task id, event JSON with an empty id, type, revision, time, time ms,
// stream maxlen, status ttl ms, page id, url, title, version, error class,
// error message, payload, report id.
// Returns {1, id} for a new event, {0, id} for a repeat.
const reportLua = `
local function record_report(K, A)
  local cur = redis.call('HMGET', K[1], 'gen', 'runs', 'revision')
  local id = A[1] .. ':' .. (cur[1] or '0')
  local runs = cur[2] or ''
  if string.find(' ' .. runs .. ' ', ' ' .. id .. ' ', 1, true) then return {0, id} end
  local typ, rev = A[3], tonumber(A[4])
  redis.call('XADD', K[2], 'MAXLEN', '~', A[7], '*', 'event', '{"id":' .. cjson.encode(id) .. string.sub(A[2], 9))
  -- the last few runs are enough: a re-run comes soon after its crash
  local list = {id}
  for r in string.gmatch(runs, '%S+') do if #list < 16 then list[#list + 1] = r end end
  local st = {'runs', table.concat(list, ' ')}
  if rev >= tonumber(cur[3] or '-1') then
    -- the status is the latest revision's; an older one's is its event only
    for _, v in ipairs({'state', typ, 'revision', A[4], 'updated_at', A[5], 'event_id', id, 'task_id', A[1],
        'error_class', A[13], 'error_message', A[14]}) do st[#st + 1] = v end
    if A[9] ~= '' then
      for _, v in ipairs({'page_id', A[9], 'page_url', A[10], 'page_title', A[11], 'page_version', A[12]}) do st[#st + 1] = v end
    end
    if typ == 'report.published' then st[#st + 1] = 'published_at'; st[#st + 1] = A[5] end
  end
  redis.call('HSET', K[1], unpack(st))
  redis.call('PEXPIRE', K[1], A[8])
  local pk = redis.call('HMGET', K[3], 'revision', 'reason')
  local prev, reason = tonumber(pk[1] or '-1'), pk[2]
  if typ == 'report.parked' then
    if rev >= prev then
      if reason then redis.call('HINCRBY', K[6], reason, -1) end
      redis.call('HINCRBY', K[6], A[13], 1)
      redis.call('HSET', K[3], 'payload', A[15], 'revision', A[4], 'reason', A[13], 'message', A[14],
        'parked_at', A[5], 'task_id', A[1], 'outcome_id', id)
      redis.call('ZADD', K[4], A[6], A[16])
    end
    redis.call('HSET', K[5], 'last_failure', A[5], 'last_failure_message', A[14])
    redis.call('PEXPIRE', K[5], A[8])
  elseif typ ~= 'report.invalid' then
    -- published, unchanged, kept, or skipped because a newer revision is
    -- in Confluence: nothing of this revision waits for a person now
    if reason and rev >= prev then
      redis.call('HINCRBY', K[6], reason, -1)
      redis.call('DEL', K[3])
      redis.call('ZREM', K[4], A[16])
    end
    if typ ~= 'report.skipped' then
      redis.call('HSET', K[5], 'last_success', A[5])
      redis.call('PEXPIRE', K[5], A[8])
    end
  end
  return {1, id}
end
`

// ScriptWith returns a script that runs pre, Lua using the first nk keys
// and na arguments, and then records the report outcome whose keys and
// arguments (ReportKeysArgs) follow. pre may return early (its outcome
// is then not recorded); the script returns record_report's answer.
func ScriptWith(pre string, nk, na int) *redis.Script {
	return redis.NewScript(reportLua + pre + fmt.Sprintf(`
local K, A = {}, {}
for i = %d, #KEYS do K[#K + 1] = KEYS[i] end
for i = %d, #ARGV do A[#A + 1] = ARGV[i] end
return record_report(K, A)`, nk+1, na+1))
}

var recordReportScript = ScriptWith("", 0, 0)

// ReportKeysArgs gives the keys and arguments that record o, to append to
// a ScriptWith script's own.
func (r *Recorder) ReportKeysArgs(o *Report) (keys []string, args []any, err error) {
	now := r.now()
	ev := Event{Type: o.Type, Time: now, IntegrationID: o.IntegrationID, ReportID: o.ReportID,
		Revision: o.Revision, EventID: o.EventID, TaskID: o.TaskID, Page: o.Page, Error: o.Error}
	data, err := json.Marshal(ev)
	if err != nil {
		return nil, nil, err
	}
	var pg Page
	if o.Page != nil {
		pg = *o.Page
	}
	var e Error
	if o.Error != nil {
		e = *o.Error
	}
	ttl := o.StatusTTL
	if ttl <= 0 {
		ttl = statusTTL
	}
	keys = []string{ReportStatusKey(o.IntegrationID, o.ReportID), r.streamFor(o.IntegrationID), parkedKey(o.IntegrationID, o.ReportID),
		parkedIndexKey(o.IntegrationID), integrationStatusKey(o.IntegrationID), parkedReasonsKey(o.IntegrationID)}
	payload := o.Payload
	if r.Seal != nil && len(payload) > 0 {
		payload = r.Seal.seal(o.IntegrationID, o.ReportID, payload)
	}
	args = []any{o.TaskID, data, o.Type, o.Revision, now.Format(time.RFC3339Nano), now.UnixMilli(), r.maxLen(), ttl.Milliseconds(),
		pg.ID, pg.URL, pg.Title, strconv.Itoa(pg.Version), e.Class, e.Message, payload, o.ReportID}
	return keys, args, nil
}

// Recorded tells what a record script answered: the event id and whether
// it was written now (false: a re-run of an outcome already recorded).
func (r *Recorder) Recorded(o *Report, res any) (id string, written bool) {
	v, _ := res.([]any)
	if len(v) == 2 {
		n, _ := v[0].(int64)
		id, _ = v[1].(string)
		written = n == 1
	}
	if written && r.Observe != nil {
		r.Observe(o.Type)
	}
	return id, written
}

// RecordReport records o on its own (outcomes with no state of their own
// to write: unchanged, skipped, parked).
func (r *Recorder) RecordReport(ctx context.Context, o *Report) (id string, err error) {
	keys, args, err := r.ReportKeysArgs(o)
	if err != nil {
		return "", err
	}
	res, err := recordReportScript.Run(ctx, r.Redis, keys, args...).Result()
	if err != nil {
		return "", fmt.Errorf("record outcome %s of %s: %w", o.Type, o.TaskID, err)
	}
	id, _ = r.Recorded(o, res)
	_ = r.Flush(ctx, o.IntegrationID) // recorded; what is left in the outbox, Relay moves
	if o.Type == TypeParked {
		// Idempotent, and outside the script: on a cluster this set lives
		// in another slot than the integration's keys.
		if err := r.Redis.SAdd(ctx, parkedIntegrationsKey, o.IntegrationID).Err(); err != nil {
			return id, fmt.Errorf("index parked integration %s: %w", o.IntegrationID, err)
		}
	}
	return id, nil
}

// invalidScript writes an undecodable task's event once per task.
// K: done marker, stream. A: event JSON, maxlen, marker ttl ms.
var invalidScript = redis.NewScript(`
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[3]) == false then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'event', ARGV[1])
return 1`)

// Invalid records report.invalid for a task whose payload cannot be
// decoded, with what could be read of it (ids may be empty).
func (r *Recorder) Invalid(ctx context.Context, taskID, integrationID, reportID string, revision int64, message string) error {
	ev := Event{ID: taskID + ":invalid", Type: TypeInvalid, Time: r.now(), IntegrationID: integrationID, ReportID: reportID,
		Revision: revision, TaskID: taskID, Error: &Error{Class: ClassInvalid, Message: message}}
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	n, err := invalidScript.Run(ctx, r.Redis, []string{invalidDoneKey(taskID), StreamKey}, data, r.maxLen(), (30 * 24 * time.Hour).Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("record outcome %s of %s: %w", TypeInvalid, taskID, err)
	}
	if n == 1 && r.Observe != nil {
		r.Observe(TypeInvalid)
	}
	return nil
}

// integrationScript changes an integration's needs_reauth state and
// writes its event, only when the state really changes.
// K: integration status, stream. A: "1" needs re-auth / "0" ok, reason,
// time, event JSON, maxlen, status ttl ms.
var integrationScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'needs_reauth') == '1'
local want = ARGV[1] == '1'
if cur == want then return 0 end
if want then
  redis.call('HSET', KEYS[1], 'needs_reauth', '1', 'reason', ARGV[2], 'since', ARGV[3])
else
  redis.call('HSET', KEYS[1], 'needs_reauth', '0', 'ok_since', ARGV[3])
  redis.call('HDEL', KEYS[1], 'reason', 'since')
end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'event', ARGV[4])
return 1`)

// NeedsReauth marks integration as needing re-authorisation (reason says
// what to do) and writes integration.needs_reauth, once per change.
func (r *Recorder) NeedsReauth(ctx context.Context, integration, reason string) error {
	return r.integrationState(ctx, integration, true, reason)
}

// IntegrationOK clears needs_reauth (new credentials) and writes
// integration.ok when it was set.
func (r *Recorder) IntegrationOK(ctx context.Context, integration string) error {
	return r.integrationState(ctx, integration, false, "")
}

func (r *Recorder) integrationState(ctx context.Context, integration string, needsReauth bool, reason string) error {
	now := r.now()
	ev := Event{Type: TypeOK, Time: now, IntegrationID: integration}
	flag := "0"
	if needsReauth {
		ev.Type, flag = TypeNeedsReauth, "1"
		ev.Error = &Error{Class: ClassNeedsReauth, Message: reason}
	}
	// Stable: the state change happens once at this time; a repeat of the
	// same change finds the state already set and writes nothing.
	ev.ID = "integration:" + integration + ":" + ev.Type[len("integration."):] + ":" + strconv.FormatInt(now.UnixMilli(), 10)
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	n, err := integrationScript.Run(ctx, r.Redis, []string{integrationStatusKey(integration), r.streamFor(integration)},
		flag, reason, now.Format(time.RFC3339Nano), data, r.maxLen(), statusTTL.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("record outcome %s of %s: %w", ev.Type, integration, err)
	}
	if n == 1 && r.Observe != nil {
		r.Observe(ev.Type)
	}
	_ = r.Flush(ctx, integration) // recorded; what is left in the outbox, Relay moves
	return nil
}
