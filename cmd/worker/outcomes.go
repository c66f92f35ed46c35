package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"retropub/config"
	"retropub/credstore"
	"retropub/httpapi"
	"retropub/internal/metrics"
	"retropub/internal/randhex"
	"retropub/jobs"
	"retropub/outcomes"
	"retropub/webhook"
)

// newRecorder is the outcome recorder of the configuration; met nil
// counts nothing.
func newRecorder(cfg *config.Config, rdb redis.UniversalClient, met *metrics.Metrics, seal *outcomes.Sealer) *outcomes.Recorder {
	return &outcomes.Recorder{Redis: rdb, MaxLen: cfg.OutcomeStreamMaxLen, Observe: met.OutcomeEvent, Seal: seal}
}

// newSealer seals parked payloads with keys derived from CREDSTORE_KEYS.
func newSealer(cfg *config.Config) (*outcomes.Sealer, error) {
	keys, err := credstore.ParseKeys(cfg.CredstoreKeys)
	if err != nil {
		return nil, fmt.Errorf("CREDSTORE_KEYS: %w", err)
	}
	return outcomes.NewSealer(keys)
}

// newReplayer runs parked publishes again through rdb's queues.
func newReplayer(rdb redis.UniversalClient, seal *outcomes.Sealer) *jobs.Replayer {
	return &jobs.Replayer{Client: asynq.NewClientFromRedisClient(rdb), Inspector: asynq.NewInspectorFromRedisClient(rdb),
		Parked: &outcomes.Store{Redis: rdb, Seal: seal}}
}

// startOutcomeLoops runs what every worker does for the outcome stream
// besides publishing: webhook delivery (with OUTCOME_WEBHOOK_URL) and the
// parked-reports gauge. stop waits for them to end.
func (a *app) startOutcomeLoops(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		a.recorder.Relay(ctx, time.Second) // a cluster's outboxes to the stream
	}()
	go func() {
		defer wg.Done()
		a.met.WatchParked(ctx, 15*time.Second, (&outcomes.Store{Redis: a.rdb}).ParkedByReason)
	}()
	if a.cfg.OutcomeWebhookURL != "" {
		d := &webhook.Deliverer{
			Redis: a.rdb, URL: a.cfg.OutcomeWebhookURL, Secret: a.cfg.OutcomeWebhookSecret, MaxAge: a.cfg.OutcomeWebhookMaxAge,
			Consumer: consumerName(), Log: a.log, Result: a.met.WebhookDelivery, Oldest: a.met.OldestUndelivered,
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.Run(ctx); err != nil {
				a.log.Error("webhook delivery stopped", zap.Error(err))
			}
		}()
	}
	return func() { cancel(); wg.Wait() }
}

// consumerName names this process in the webhook consumer group: host,
// pid and a random part, so a restarted worker is a new consumer and the
// old one's pending events are claimed like any dead worker's.
func consumerName() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), randhex.String(4))
}

// apiHandler is the HTTP API of DESIGN §10 (API_TOKENS set).
func (a *app) apiHandler() *httpapi.API {
	tokens := make([]httpapi.Token, len(a.cfg.APITokens))
	for i, t := range a.cfg.APITokens {
		tokens[i] = httpapi.Token{Name: t.Name, Secret: t.Token}
	}
	client := asynq.NewClientFromRedisClient(a.rdb)
	store := &outcomes.Store{Redis: a.rdb, Seal: a.recorder.Seal}
	return &httpapi.API{Tokens: tokens, MaxBody: a.cfg.APIMaxBody, Client: client, Inspector: a.insp, Status: store,
		Replayer: &jobs.Replayer{Client: client, Inspector: a.insp, Parked: store}, Integrations: a.store, Log: a.log}
}
