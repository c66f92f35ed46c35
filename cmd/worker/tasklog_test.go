package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"retropub/internal/logging"
	"retropub/jobs"
)

type syncLog struct {
	ch chan string
}

func (s *syncLog) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		s.ch <- l
	}
	return len(p), nil
}

// An archived task is one log line with its class and message: no stack
// trace, no asynq "Retry exhausted" after a single attempt.
func TestArchivedTaskLogsOneLine(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	out := &syncLog{ch: make(chan string, 100)}
	log, err := logging.New("info", "json", out)
	if err != nil {
		t.Fatal(err)
	}
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency: 1, Queues: map[string]int{"default": 1},
		TaskCheckInterval: 10 * time.Millisecond, DelayedTaskCheckInterval: 100 * time.Millisecond,
		RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return 0 },
		IsFailure:      jobs.IsFailure,
		Logger:         logging.Asynq(log), LogLevel: asynq.WarnLevel,
		ErrorHandler: taskErrorHandler(log),
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc("t:permanent", func(ctx context.Context, _ *asynq.Task) error {
		return &jobs.PermanentError{Err: errors.New("space ENG does not exist")}
	})
	mux.HandleFunc("t:flaky", func(ctx context.Context, _ *asynq.Task) error {
		return errors.New("connection reset")
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	client := asynq.NewClientFromRedisClient(rdb)
	for _, tk := range []struct {
		typ   string
		retry int
	}{{"t:permanent", 5}, {"t:flaky", 1}} {
		if _, err := client.Enqueue(asynq.NewTask(tk.typ, nil), asynq.TaskID(tk.typ), asynq.MaxRetry(tk.retry)); err != nil {
			t.Fatal(err)
		}
	}

	type entry struct {
		Msg, TaskID, Class, Error, Stacktrace string
		Attempt                               int
	}
	var got []entry
	timeout := time.After(15 * time.Second)
	for archived := 0; archived < 2; {
		select {
		case l := <-out.ch:
			if strings.Contains(l, "Retry exhausted") {
				t.Errorf("asynq's Retry exhausted line: %s", l)
			}
			var e struct {
				Msg        string `json:"msg"`
				TaskID     string `json:"task_id"`
				Class      string `json:"class"`
				Error      string `json:"error"`
				Stacktrace string `json:"stacktrace"`
				Attempt    int    `json:"attempt"`
			}
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("log line %q: %v", l, err)
			}
			if e.TaskID == "" {
				continue
			}
			got = append(got, entry(e))
			if e.Msg == "task archived" {
				archived++
			}
		case <-timeout:
			t.Fatalf("not both tasks archived in 15s; lines %+v", got)
		}
	}
	want := []entry{
		{Msg: "task archived", TaskID: "t:permanent", Class: "permanent", Error: "space ENG does not exist", Attempt: 1},
		{Msg: "task will run again", TaskID: "t:flaky", Error: "connection reset", Attempt: 1},
		{Msg: "task archived", TaskID: "t:flaky", Class: "retries_exhausted", Error: "connection reset", Attempt: 2},
	}
	if len(got) != len(want) {
		t.Fatalf("log lines %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}
