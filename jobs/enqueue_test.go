package jobs

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

func enqSetup(t *testing.T) (*asynq.Client, *asynq.Inspector) {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return asynq.NewClientFromRedisClient(rdb), asynq.NewInspectorFromRedisClient(rdb)
}

func enqExamplePayload(t *testing.T) *PublishPayload {
	t.Helper()
	p, err := DecodePublishPayload([]byte(payloadDesignExample))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEnqueueNewPublishTaskOptions(t *testing.T) {
	client, insp := enqSetup(t)
	p := enqExamplePayload(t)
	task, err := NewPublishTask(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Enqueue(task); err != nil {
		t.Fatal(err)
	}
	info, err := insp.GetTaskInfo("default", "report:publish:acme-cloud:retro-8f2c:3")
	if err != nil {
		t.Fatal(err)
	}
	if info.Type != TypePublishReport || info.Retention != PublishRetention || info.MaxRetry != PublishMaxRetry ||
		info.Timeout != PublishTimeout || info.State != asynq.TaskStatePending {
		t.Errorf("task info = %+v", info)
	}
	got, err := DecodePublishPayload(info.Payload)
	if err != nil || got.TaskID() != p.TaskID() {
		t.Fatalf("payload does not decode back: %v", err)
	}

	// Caller options come last and win.
	task, err = NewPublishTask(p, asynq.Queue("low"), asynq.MaxRetry(3))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Enqueue(task); err != nil {
		t.Fatal(err)
	}
	info, err = insp.GetTaskInfo("low", p.TaskID())
	if err != nil || info.MaxRetry != 3 {
		t.Fatalf("override: info=%+v err=%v", info, err)
	}
}

func TestEnqueueFromJSONCompacts(t *testing.T) {
	p := enqExamplePayload(t)
	task, err := NewPublishTaskFromJSON(p, []byte(payloadDesignExample))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range task.Payload() {
		if b == '\n' {
			t.Fatal("payload not compacted")
		}
	}
	if _, err := DecodePublishPayload(task.Payload()); err != nil {
		t.Fatal(err)
	}
}

func TestEnqueuePublishDuplicate(t *testing.T) {
	client, insp := enqSetup(t)
	ctx := context.Background()
	p := enqExamplePayload(t)

	first, err := EnqueuePublish(ctx, client, insp, p, EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if first.Duplicate || first.State != "pending" || first.TaskID != p.TaskID() || first.Queue != "default" {
		t.Fatalf("first = %+v", first)
	}
	second, err := EnqueuePublish(ctx, client, insp, p, EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !second.Duplicate || second.State != "pending" || second.TaskID != p.TaskID() {
		t.Fatalf("second = %+v", second)
	}
	if n, _ := insp.ListPendingTasks("default"); len(n) != 1 {
		t.Fatalf("%d pending tasks, want 1", len(n))
	}
}

func TestEnqueuePublishArchivedDuplicate(t *testing.T) {
	client, insp := enqSetup(t)
	ctx := context.Background()
	p := enqExamplePayload(t)
	if _, err := EnqueuePublish(ctx, client, insp, p, EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := insp.ArchiveTask("default", p.TaskID()); err != nil {
		t.Fatal(err)
	}

	res, err := EnqueuePublish(ctx, client, insp, p, EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Duplicate || res.State != "archived" || res.Rerun {
		t.Fatalf("archived duplicate = %+v", res)
	}
	// ArchiveTask records no error; the field is copied from TaskInfo.LastErr.
	info, _ := insp.GetTaskInfo("default", p.TaskID())
	if res.LastError != info.LastErr {
		t.Errorf("LastError = %q, want %q", res.LastError, info.LastErr)
	}

	res, err = EnqueuePublish(ctx, client, insp, p, EnqueueOptions{RerunArchived: true})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Duplicate || res.State != "pending" || !res.Rerun {
		t.Fatalf("rerun = %+v", res)
	}
	if info, _ := insp.GetTaskInfo("default", p.TaskID()); info.State != asynq.TaskStatePending {
		t.Fatalf("state after rerun = %v", info.State)
	}
}

// An archived task with a real last error, produced by a handler.
func TestEnqueuePublishArchivedLastError(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	client, insp := asynq.NewClientFromRedisClient(rdb), asynq.NewInspectorFromRedisClient(rdb)
	ctx := context.Background()
	p := enqExamplePayload(t)
	if _, err := EnqueuePublish(ctx, client, insp, p, EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{Concurrency: 1, Queues: map[string]int{"default": 1}, LogLevel: asynq.FatalLevel})
	done := make(chan struct{})
	mux := asynq.NewServeMux()
	mux.HandleFunc(TypePublishReport, func(context.Context, *asynq.Task) error {
		defer close(done)
		return &enqSkipErr{}
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	<-done
	srv.Shutdown()
	var res *EnqueueResult
	for range 100 {
		var err error
		if res, err = EnqueuePublish(ctx, client, insp, p, EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
		if res.State == "archived" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if res.State != "archived" || res.LastError != "space ENG not found: skip retry for the task" {
		t.Fatalf("res = %+v", res)
	}
}

type enqSkipErr struct{}

func (*enqSkipErr) Error() string { return "space ENG not found: " + asynq.SkipRetry.Error() }
func (*enqSkipErr) Unwrap() error { return asynq.SkipRetry }

func TestEnqueueIdempotentReenqueuesWhenDeleted(t *testing.T) {
	client, insp := enqSetup(t)
	ctx := context.Background()
	p := enqExamplePayload(t)
	if _, err := EnqueuePublish(ctx, client, insp, p, EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := insp.DeleteTask("default", p.TaskID()); err != nil {
		t.Fatal(err)
	}
	res, err := EnqueuePublish(ctx, client, insp, p, EnqueueOptions{})
	if err != nil || res.Duplicate || res.State != "pending" {
		t.Fatalf("res=%+v err=%v", res, err)
	}
}
