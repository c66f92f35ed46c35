package main

import (
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"retropub/config"
	"retropub/internal/metrics"
	"retropub/jobs"
	"retropub/outcomes"
)

// newRecorder is the outcome recorder of the configuration; met nil
// counts nothing.
func newRecorder(cfg *config.Config, rdb redis.UniversalClient, met *metrics.Metrics) *outcomes.Recorder {
	return &outcomes.Recorder{Redis: rdb, MaxLen: cfg.OutcomeStreamMaxLen, Observe: met.OutcomeEvent}
}

// newReplayer runs parked publishes again through rdb's queues.
func newReplayer(rdb redis.UniversalClient) *jobs.Replayer {
	return &jobs.Replayer{Client: asynq.NewClientFromRedisClient(rdb), Inspector: asynq.NewInspectorFromRedisClient(rdb),
		Parked: &outcomes.Store{Redis: rdb}}
}
