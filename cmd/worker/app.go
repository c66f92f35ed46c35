package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"retropub/config"
	"retropub/confluence"
	"retropub/credstore"
	"retropub/internal/logging"
	"retropub/internal/redisconn"
	"retropub/jobs"
)

// app is one worker process's parts, assembled from the configuration.
type app struct {
	cfg   *config.Config
	log   *zap.Logger
	rdb   redis.UniversalClient
	store *credstore.Store
	http  *http.Client
	srv   *asynq.Server
	mux   *asynq.ServeMux
}

func newApp(cfg *config.Config, log *zap.Logger, rdb redis.UniversalClient) (*app, error) {
	keys, err := credstore.ParseKeys(cfg.CredstoreKeys)
	if err != nil {
		return nil, fmt.Errorf("CREDSTORE_KEYS: %w", err)
	}
	a := &app{
		cfg: cfg, log: log, rdb: rdb,
		store: credstore.New(rdb, keys),
		http:  confluence.NewHTTPClient(cfg.ConfluenceTimeout, cfg.WorkerConcurrency),
	}
	redisconn.Install(rdb) // no busy loop while Redis refuses us
	a.mux = asynq.NewServeMux()
	jobs.Register(a.mux, &jobs.Publisher{
		Redis: rdb, Integrations: a.store, Log: log, Limits: publishLimits(cfg),
		Connect: jobs.NewConnector(cfg.AtlassianAPIURL, a.http, confluence.WithGate(newGate(cfg, a, log))),
	})
	a.srv = asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:              cfg.WorkerConcurrency,
		Queues:                   cfg.WorkerQueues,
		ShutdownTimeout:          cfg.WorkerShutdownTimeout,
		TaskCheckInterval:        cfg.WorkerPollInterval,
		DelayedTaskCheckInterval: time.Second,
		RetryDelayFunc:           jobs.RetryDelay,
		IsFailure:                jobs.IsFailure,
		Logger:                   logging.Asynq(log),
		LogLevel:                 asynq.WarnLevel,
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			id, _ := asynq.GetTaskID(ctx)
			n, _ := asynq.GetRetryCount(ctx)
			max, _ := asynq.GetMaxRetry(ctx)
			final := errors.Is(err, asynq.SkipRetry) || (jobs.IsFailure(err) && n >= max)
			fields := []zap.Field{zap.String("task_id", id), zap.String("task_type", t.Type()), zap.Int("attempt", n+1), zap.Error(err)}
			if final {
				log.Error("task archived", fields...)
			} else {
				log.Info("task will run again", fields...)
			}
		}),
	})
	return a, nil
}

// serveHTTP runs the health endpoints (and, later, metrics and dashboard).
func (a *app) httpMux(extra func(*http.ServeMux)) *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	m.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := a.redisWritable(r.Context()); err != nil {
			http.Error(w, "redis: unavailable", http.StatusServiceUnavailable)
			return
		}
		if err := a.srv.Ping(); err != nil {
			http.Error(w, "worker: not running", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if extra != nil {
		extra(m)
	}
	return m
}

// startHTTP serves m on addr until stop is called.
func startHTTP(log *zap.Logger, addr string, h http.Handler) (stop func()) {
	if addr == "" {
		return func() {}
	}
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", zap.String("addr", addr), zap.Error(err))
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		wg.Wait()
	}
}
