package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"retropub/config"
	"retropub/confluence"
	"retropub/credstore"
	"retropub/gate"
	"retropub/internal/logging"
	"retropub/internal/metrics"
	"retropub/internal/redisconn"
	"retropub/internal/rediskeys"
	"retropub/jobs"
	"retropub/outcomes"
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
	insp  *asynq.Inspector
	met   *metrics.Metrics
	// recorder writes outcome events (and relays a cluster's outboxes).
	recorder *outcomes.Recorder
	gate     *gate.Gate
	// running is true between start and shutdown: asynq's Ping answers
	// nil for a server that is not running, so /readyz cannot ask it.
	running atomic.Bool
}

func newApp(cfg *config.Config, log *zap.Logger, rdb redis.UniversalClient) (*app, error) {
	keys, err := credstore.ParseKeys(cfg.CredstoreKeys)
	if err != nil {
		return nil, fmt.Errorf("CREDSTORE_KEYS: %w", err)
	}
	a := &app{
		cfg: cfg, log: log, rdb: rdb,
		store: credstore.New(rdb, keys),
		http:  newHTTPClient(cfg),
	}
	legacy := rediskeys.NewFallback(rdb)
	a.store.UseFallback(legacy)
	redisconn.Install(rdb) // no busy loop while Redis refuses us
	a.insp = asynq.NewInspectorFromRedisClient(rdb)
	a.met = metrics.New(a.insp)
	a.met.SetPointsBudget(cfg.AtlassianPointsPerHour)
	a.met.SetReadiness(func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return a.ready(ctx) == nil
	})
	a.mux = asynq.NewServeMux()
	seal, err := outcomes.NewSealer(keys)
	if err != nil {
		return nil, err
	}
	a.recorder = newRecorder(cfg, rdb, a.met, seal)
	tokens := credstore.NewTokens(a.store, oauthConfig(cfg, a.http))
	a.gate = newGate(cfg, a, log)
	connect := jobs.NewConnector(cfg.AtlassianAPIURL, a.http, tokens,
		confluence.WithObserver(a.met.Observe), confluence.WithGate(a.gate))
	jobs.Register(a.mux, &jobs.Publisher{
		Redis: rdb, Legacy: legacy, Integrations: a.store, Log: log, Limits: publishLimits(cfg), Connect: connect,
		AttachmentURLHosts: cfg.AttachmentURLHosts, AttachmentMaxBytes: cfg.AttachmentMaxBytes,
		Downloads: jobs.NewDownloadClient(jobs.DownloadTimeout, egressOptions(cfg)...),
		Outcomes:  a.recorder,
		Ownership: jobs.NewOwnership(keys),
	})
	jobs.ObserveOutcomes(a.mux, a.met.TaskOutcome)
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
		ErrorHandler:             taskErrorHandler(log),
	})
	return a, nil
}

// newHTTPClient is the one client all Confluence and Atlassian traffic
// shares: the egress policy (CONFLUENCE_ALLOW_CIDRS, EGRESS_PROXY_URL) and
// a connection pool sized for the worker's concurrency.
func newHTTPClient(cfg *config.Config) *http.Client {
	// The Atlassian endpoints pass whatever address they have, because they
	// are the operator's configuration: the Cloud client and the OAuth calls
	// (oauthConfig) mark their requests trusted, never a URL comparison.
	return confluence.NewHTTPClient(cfg.ConfluenceTimeout, cfg.WorkerConcurrency, egressOptions(cfg)...)
}

// egressOptions is the egress policy of the configuration, for Confluence
// traffic and attachment downloads alike.
func egressOptions(cfg *config.Config) []confluence.HTTPOption {
	opts := []confluence.HTTPOption{confluence.AllowCIDRs(cfg.ConfluenceAllowCIDRs...)}
	if cfg.EgressProxyURL != "" {
		// config.Load has checked it is an absolute http(s)/socks5 URL.
		if u, err := url.Parse(cfg.EgressProxyURL); err == nil {
			opts = append(opts, confluence.ViaProxy(u))
		}
	}
	return opts
}

// oauthConfig is the OAuth app of the configuration; hc nil uses a client
// with the egress policy of the configuration. Its calls go only to
// ATLASSIAN_AUTH_URL and ATLASSIAN_API_URL, so they are trusted
// (confluence.TrustedClient): those may be internal addresses.
func oauthConfig(cfg *config.Config, hc *http.Client) credstore.OAuthConfig {
	if hc == nil {
		hc = newHTTPClient(cfg)
	}
	return credstore.OAuthConfig{ClientID: cfg.AtlassianClientID, ClientSecret: cfg.AtlassianClientSecret,
		AuthURL: cfg.AtlassianAuthURL, APIURL: cfg.AtlassianAPIURL, HTTPClient: confluence.TrustedClient(hc)}
}

// start starts the asynq server.
func (a *app) start() error {
	if err := a.srv.Start(a.mux); err != nil {
		return fmt.Errorf("start asynq server: %w", err)
	}
	a.running.Store(true)
	return nil
}

// shutdown drains the asynq server within WORKER_SHUTDOWN_TIMEOUT; tasks
// still running then are handed back to their queue.
func (a *app) shutdown() {
	a.running.Store(false)
	a.srv.Shutdown()
	a.gate.Close() // hand back what the gate's leases hold
}

// errNotRunning is /readyz's answer between start-up and start, and from
// SIGTERM on.
var errNotRunning = errors.New("worker: not running")

// ready is nil when the worker can take tasks: Redis accepts a write and
// the asynq server runs (/readyz and retropub_worker_ready).
func (a *app) ready(ctx context.Context) error {
	// A probe answers in time even when Redis hangs (a partitioned or
	// stopped node): not ready is the answer then, not a timeout.
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := a.redisWritable(ctx); err != nil {
		return errors.New("redis: unavailable") // the cause is in the worker's log, not on a public endpoint
	}
	if !a.running.Load() || a.srv.Ping() != nil {
		return errNotRunning
	}
	return nil
}

// httpMux serves the health endpoints and /metrics; extra mounts more
// (the dashboard).
func (a *app) httpMux(extra func(*http.ServeMux)) *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	m.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := a.ready(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	m.Handle("GET /metrics", a.met.Handler())
	if extra != nil {
		extra(m)
	}
	return m
}

// startHTTP serves h on addr until stop is called and returns the address
// it listens on (HTTP_ADDR may ask for port 0).
func startHTTP(log *zap.Logger, addr string, h http.Handler) (bound string, stop func(), err error) {
	if addr == "" {
		return "", func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("HTTP_ADDR %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", zap.String("addr", addr), zap.Error(err))
		}
	}()
	log.Info("http listening", zap.String("addr", ln.Addr().String()))
	return ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		wg.Wait()
	}, nil
}
