package main

import (
	"context"
	"errors"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"retropub/jobs"
	"retropub/outcomes"
)

// Why a task was archived, in its log line.
const (
	classNeedsReauth      = outcomes.ClassNeedsReauth
	classPermanent        = outcomes.ClassPermanent
	classRetriesExhausted = "retries_exhausted"
)

// taskErrorHandler logs each failed attempt once: "task archived" with
// the class and the message when asynq archives it (asynq's own "Retry
// exhausted" line is dropped by logging.Asynq: it is wrong after a single
// attempt of a permanent error), or "task will run again". An archived
// task is an operator's business but not a bug, so no stack trace.
func taskErrorHandler(log *zap.Logger) asynq.ErrorHandlerFunc {
	log = log.WithOptions(zap.AddStacktrace(zapcore.FatalLevel))
	return func(ctx context.Context, t *asynq.Task, err error) {
		id, _ := asynq.GetTaskID(ctx)
		n, _ := asynq.GetRetryCount(ctx)
		max, _ := asynq.GetMaxRetry(ctx)
		fields := []zap.Field{zap.String("task_id", id), zap.String("task_type", t.Type()), zap.Int("attempt", n+1)}
		if class := archiveClass(err, n, max); class != "" {
			log.Error("task archived", append(fields, zap.String("class", class), zap.String("error", err.Error()))...)
			return
		}
		log.Info("task will run again", append(fields, zap.String("error", err.Error()))...)
	}
}

// archiveClass is why asynq archives a task that failed with err on
// attempt n+1 of max+1, or "" when it runs again (the order of asynq's own
// decision: SkipRetry, then retries used up by failures).
func archiveClass(err error, n, max int) string {
	var re *jobs.ReauthError
	switch {
	case errors.As(err, &re):
		return classNeedsReauth
	case errors.Is(err, asynq.SkipRetry):
		return classPermanent
	case jobs.IsFailure(err) && n >= max:
		return classRetriesExhausted
	}
	return ""
}
