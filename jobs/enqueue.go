package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// Publish task options (DESIGN §2).
const (
	// PublishQueue is the queue report:publish tasks go to.
	PublishQueue = "default"
	// PublishRetention keeps a finished task (and so its TaskID) for the
	// de-duplication window: re-enqueueing the same revision is a no-op.
	PublishRetention = 24 * time.Hour
	PublishMaxRetry  = 20
	// PublishTimeout is per attempt; asynq stores whole seconds.
	PublishTimeout = 10 * time.Minute
)

// NewPublishTask validates p and builds its asynq task with the standard
// options (TaskID, queue, retention, retries, timeout); opts come last, so
// they win.
func NewPublishTask(p *PublishPayload, opts ...asynq.Option) (*asynq.Task, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	data, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("jobs: encode payload: %w", err)
	}
	if len(data) > MaxPayloadBytes {
		return nil, perr("json", "payload is %d bytes, more than the %d MiB limit (send large attachments by url)", len(data), MaxPayloadBytes>>20)
	}
	return newPublishTask(p, data, opts), nil
}

// NewPublishTaskFromJSON is NewPublishTask for bytes that
// DecodePublishPayload already accepted as p: it enqueues the producer's
// bytes (compacted) instead of re-marshalling them, which matters when the
// CLI enqueues a large batch. p must be the result of decoding data.
func NewPublishTaskFromJSON(p *PublishPayload, data []byte, opts ...asynq.Option) (*asynq.Task, error) {
	if p == nil {
		return nil, perr("json", "no payload")
	}
	var buf bytes.Buffer
	buf.Grow(len(data))
	if err := json.Compact(&buf, data); err != nil {
		return nil, perr("json", "%v", err)
	}
	return newPublishTask(p, buf.Bytes(), opts), nil
}

func newPublishTask(p *PublishPayload, data []byte, opts []asynq.Option) *asynq.Task {
	all := append([]asynq.Option{
		asynq.TaskID(p.TaskID()),
		asynq.Queue(PublishQueue),
		asynq.Retention(PublishRetention),
		asynq.MaxRetry(PublishMaxRetry),
		asynq.Timeout(PublishTimeout),
	}, opts...)
	return asynq.NewTask(TypePublishReport, data, all...)
}

// EnqueueOptions tune an idempotent enqueue.
type EnqueueOptions struct {
	// RerunArchived runs an archived duplicate again (Inspector.RunTask)
	// instead of reporting it.
	RerunArchived bool
}

// EnqueueResult says what became of an enqueue.
type EnqueueResult struct {
	TaskID string
	Queue  string
	// State is asynq's state name: pending, scheduled, active, retry,
	// archived, completed (or aggregating).
	State string
	// Duplicate is true when the TaskID already existed: the event was
	// enqueued before, within the retention window.
	Duplicate bool
	// Rerun is true when an archived duplicate was sent back to pending.
	Rerun bool
	// LastError is the archived duplicate's last error; an archived task
	// is never accepted silently.
	LastError string
}

// EnqueuePublish enqueues p at most once per TaskID. A TaskID conflict is
// looked up: a live or completed task is a duplicate, an archived one is
// reported with its last error, or run again with o.RerunArchived.
func EnqueuePublish(ctx context.Context, client *asynq.Client, insp *asynq.Inspector, p *PublishPayload, o EnqueueOptions) (*EnqueueResult, error) {
	task, err := NewPublishTask(p)
	if err != nil {
		return nil, err
	}
	return EnqueueIdempotent(ctx, client, insp, task, PublishQueue, p.TaskID(), o)
}

// EnqueueIdempotent enqueues task on queue under TaskID id (both override
// the task's own options, so the conflict lookup uses the same queue) and
// resolves a TaskID conflict as EnqueuePublish describes. It serves every
// task type with a deterministic id (report:publish, integration:*).
// insp is only used after a conflict.
func EnqueueIdempotent(ctx context.Context, client *asynq.Client, insp *asynq.Inspector, task *asynq.Task, queue, id string, o EnqueueOptions) (*EnqueueResult, error) {
	opts := []asynq.Option{asynq.Queue(queue), asynq.TaskID(id)}
	for attempt := 0; ; attempt++ {
		info, err := client.EnqueueContext(ctx, task, opts...)
		if err == nil {
			return &EnqueueResult{TaskID: info.ID, Queue: info.Queue, State: info.State.String()}, nil
		}
		if !errors.Is(err, asynq.ErrTaskIDConflict) {
			return nil, fmt.Errorf("enqueue %s: %w", id, err)
		}
		res, err := resolveConflict(insp, queue, id, o)
		// The janitor may delete a retained task between the conflict and
		// the lookup: the id is free again, so enqueue once more.
		if errors.Is(err, asynq.ErrTaskNotFound) && attempt == 0 && ctx.Err() == nil {
			continue
		}
		return res, err
	}
}

func resolveConflict(insp *asynq.Inspector, queue, id string, o EnqueueOptions) (*EnqueueResult, error) {
	if insp == nil {
		return nil, fmt.Errorf("enqueue %s: %w (no Inspector to look it up)", id, asynq.ErrTaskIDConflict)
	}
	info, err := lookup(insp, queue, id)
	if err != nil {
		return nil, err
	}
	res := &EnqueueResult{TaskID: id, Queue: queue, State: info.State.String(), Duplicate: true}
	if info.State != asynq.TaskStateArchived {
		return res, nil
	}
	if !o.RerunArchived {
		res.LastError = info.LastErr
		return res, nil
	}
	if err := insp.RunTask(queue, id); err != nil {
		// Someone else may have rerun or deleted it meanwhile; report
		// whatever it is now rather than failing.
		info2, err2 := lookup(insp, queue, id)
		if err2 != nil || info2.State == asynq.TaskStateArchived {
			return nil, fmt.Errorf("rerun archived task %s: %w", id, err)
		}
		res.State = info2.State.String()
		return res, nil
	}
	res.State, res.Rerun = asynq.TaskStatePending.String(), true
	return res, nil
}

// lookup is GetTaskInfo with a missing queue folded into ErrTaskNotFound.
func lookup(insp *asynq.Inspector, queue, id string) (*asynq.TaskInfo, error) {
	info, err := insp.GetTaskInfo(queue, id)
	if errors.Is(err, asynq.ErrQueueNotFound) {
		return nil, fmt.Errorf("look up task %s: %w", id, asynq.ErrTaskNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("look up task %s: %w", id, err)
	}
	return info, nil
}
