// Command worker runs retropub's publishing workers, its demo, and the
// operator commands for integrations and keys.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"retropub/config"
	"retropub/credstore"
	"retropub/internal/logging"
	"retropub/internal/redisconn"
	"retropub/internal/rediskeys"
	"retropub/outcomes"
)

const usage = `usage:
  worker                       run the workers (configuration from the environment)
  worker demo [--once]         the whole pipeline on embedded defaults
  worker integrations put --file F|- | list | show ID | delete ID
  worker integrations oauth-url --redirect-uri U | oauth-exchange --code C --redirect-uri U --id ID
  worker parked list [--integration ID] | replay (--integration ID | --all) | discard --integration ID --report R
  worker keys rotate           re-seal every integration with the first key of CREDSTORE_KEYS
  worker migrate               rename the Redis keys of a deployment made before the hash tags (idempotent; safe while workers run)`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "demo":
		return runDemo(ctx, args, stdout, stderr)
	case "run", "integrations", "keys", "migrate", "parked":
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "worker: unknown command %q\n%s\n", cmd, usage)
		return 2
	}
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	log, err := logging.New(cfg.LogLevel, cfg.LogFormat, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	defer log.Sync()
	rdb, err := redisconn.New(cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	defer rdb.Close()
	switch cmd {
	case "migrate":
		return runMigrate(ctx, rdb, args, stdout, stderr)
	case "parked":
		seal, err := newSealer(cfg)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		return runParked(ctx, &outcomes.Store{Redis: rdb, Seal: seal}, newReplayer(rdb, seal), args, stdout, stderr)
	case "integrations", "keys":
		keys, err := credstore.ParseKeys(cfg.CredstoreKeys)
		if err != nil {
			fmt.Fprintln(stderr, "CREDSTORE_KEYS:", err)
			return 2
		}
		store := credstore.New(rdb, keys)
		store.UseFallback(rediskeys.NewFallback(rdb))
		if cmd == "keys" {
			return runKeys(ctx, store, args, stdout, stderr)
		}
		seal, err := outcomes.NewSealer(keys)
		if err != nil {
			fmt.Fprintln(stderr, "CREDSTORE_KEYS:", err)
			return 2
		}
		return runIntegrations(ctx, integrationsDeps{store: store, replay: newReplayer(rdb, seal),
			outcomes: newRecorder(cfg, rdb, nil, seal), oauth: oauthConfig(cfg, nil)}, args, stdin, stdout, stderr)
	}
	if err := serve(ctx, cfg, log, rdb); err != nil {
		log.Error("worker stopped", zap.Error(err))
		return 1
	}
	return 0
}

// serve runs the asynq server until ctx ends (SIGTERM/SIGINT), then drains
// within WORKER_SHUTDOWN_TIMEOUT: asynq hands unfinished tasks back.
func serve(ctx context.Context, cfg *config.Config, log *zap.Logger, rdb redis.UniversalClient) error {
	a, err := newApp(cfg, log, rdb)
	if err != nil {
		return err
	}
	if err := a.start(); err != nil {
		return err
	}
	defer a.shutdown()
	stopOutcomes := a.startOutcomeLoops(ctx)
	defer stopOutcomes()
	var mount func(*http.ServeMux)
	if cfg.DashboardUser != "" {
		conn, err := asynqConnOpt(cfg)
		if err != nil {
			return err
		}
		dash, closeDash := dashboard(conn, cfg.DashboardUser, cfg.DashboardPassword, cfg.DashboardReadOnly)
		defer closeDash()
		mount = func(m *http.ServeMux) { m.Handle("/dashboard/", dash); m.Handle("/dashboard", dash) }
	}
	if len(cfg.APITokens) > 0 {
		dashMount := mount
		mount = func(m *http.ServeMux) {
			if dashMount != nil {
				dashMount(m)
			}
			a.apiHandler().Register(m)
		}
	}
	addr, stopHTTP, err := startHTTP(log, cfg.HTTPAddr, a.httpMux(mount))
	if err != nil {
		return err
	}
	defer stopHTTP()
	log.Info("worker running", zap.Int("concurrency", cfg.WorkerConcurrency), zap.Any("queues", cfg.WorkerQueues), zap.String("http_addr", addr))
	<-ctx.Done()
	log.Info("shutting down", zap.Duration("timeout", cfg.WorkerShutdownTimeout))
	a.shutdown()
	log.Info("worker stopped")
	return nil
}

// asynqConnOpt is the connection asynqmon opens itself (it cannot take a
// client). Sentinel is built by hand: asynq v0.26 misparses its URIs.
func asynqConnOpt(cfg *config.Config) (asynq.RedisConnOpt, error) {
	if len(cfg.RedisClusterAddrs) > 0 {
		o := asynq.RedisClusterClientOpt{Addrs: cfg.RedisClusterAddrs}
		if u, err := redis.ParseURL(cfg.RedisURL); err == nil {
			o.Username, o.Password, o.TLSConfig = u.Username, u.Password, u.TLSConfig
		}
		return o, nil
	}
	if len(cfg.RedisSentinelAddrs) > 0 {
		o := asynq.RedisFailoverClientOpt{MasterName: cfg.RedisSentinelMaster, SentinelAddrs: cfg.RedisSentinelAddrs}
		if u, err := redis.ParseURL(cfg.RedisURL); err == nil {
			o.Username, o.Password, o.DB = u.Username, u.Password, u.DB
		}
		return o, nil
	}
	return asynq.ParseRedisURI(cfg.RedisURL)
}

func runKeys(ctx context.Context, store *credstore.Store, args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 || args[0] != "rotate" {
		fmt.Fprintln(stderr, "usage: worker keys rotate")
		return 2
	}
	n, err := store.Rotate(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "keys rotate:", err)
		return 1
	}
	fmt.Fprintf(stdout, "{\"ok\":true,\"resealed\":%d}\n", n)
	return 0
}

// runMigrate renames the keys of the legacy layout (rediskeys.Migrate).
func runMigrate(ctx context.Context, rdb redis.UniversalClient, args []string, stdout, stderr io.Writer) int {
	if len(args) != 0 {
		fmt.Fprintln(stderr, "usage: worker migrate")
		return 2
	}
	rep, err := rediskeys.Migrate(ctx, rdb)
	if err != nil {
		fmt.Fprintln(stderr, "migrate:", err)
		return 1
	}
	fmt.Fprintf(stdout, "{\"ok\":true,\"scanned\":%d,\"renamed\":%d,\"superseded\":%d,\"layout\":%q}\n",
		rep.Scanned, rep.Renamed, rep.Superseded, rediskeys.LayoutTagged)
	return 0
}
