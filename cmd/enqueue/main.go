// Command enqueue puts retropub tasks on the queues (DESIGN §8):
//
//	enqueue publish --file F|- [--wait[=DUR]] [--rerun-archived]
//	enqueue test --integration ID --space KEY [--parent-title T] [--delete] [--wait[=DUR]]
//	enqueue check --integration ID [--wait[=DUR]]
//	enqueue search --integration ID --space KEY --query TEXT [--wait[=DUR]]
//	enqueue status --integration ID --report R
//
// Output is one JSON line per event on stdout; diagnostics go to stderr.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"retropub/config"
	"retropub/internal/redisconn"
)

// Exit statuses (DESIGN §8).
const (
	exitOK      = 0 // every event accepted (and, waited, completed)
	exitFailed  = 1 // a task ended archived, or the wait ran out
	exitInvalid = 2 // unreadable or invalid input, or a usage error
	exitRedis   = 3 // configuration invalid or Redis unreachable
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// env is what a subcommand may touch, injected so tests run in-process.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

func (e *env) errorf(format string, args ...any) {
	fmt.Fprintf(e.stderr, "enqueue: "+format+"\n", args...)
}

type command struct {
	summary string
	run     func(ctx context.Context, e *env, args []string) int
}

// commands is the subcommand table.
var commands = map[string]command{
	"publish": {"enqueue report:publish events from --file F|- (JSON objects)", runPublish},
	"test":    {"publish a test page through an integration (integration:test)", runTest},
	"check":   {"check an integration: current user and spaces (integration:check)", runCheck},
	"search":  {"search parent pages in a space (integration:search)", runSearch},
	"status":  {"a report's latest outcome (--integration ID --report R)", runStatus},
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	if len(args) == 0 {
		usage(stderr)
		return exitInvalid
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stderr)
		return exitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		e.errorf("unknown command %q", args[0])
		usage(stderr)
		return exitInvalid
	}
	return cmd.run(ctx, e, args[1:])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: enqueue <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'enqueue <command> -h' for its flags.")
}

// deps are the Redis-side handles every subcommand shares.
type deps struct {
	rdb    redis.UniversalClient
	client *asynq.Client
	insp   *asynq.Inspector
}

// Close closes the shared go-redis client; asynq's Client and Inspector
// refuse to close a connection they were given.
func (d *deps) Close() error { return d.rdb.Close() }

// connect builds one go-redis client for the asynq client and inspector
// and pings it, so an unreachable Redis is reported once, up front.
func connect(ctx context.Context, cfg *config.Config) (*deps, error) {
	rdb, err := redisconn.New(cfg)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redis unreachable (check REDIS_URL / REDIS_SENTINEL_ADDRS): %w", err)
	}
	return &deps{rdb: rdb, client: asynq.NewClientFromRedisClient(rdb), insp: asynq.NewInspectorFromRedisClient(rdb)}, nil
}

// loadAndConnect is config.Load plus connect, reporting failures as exit 3.
func loadAndConnect(ctx context.Context, e *env) (*deps, int) {
	cfg, err := config.Load(e.getenv)
	if err != nil {
		e.errorf("%v", err)
		return nil, exitRedis
	}
	d, err := connect(ctx, cfg)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			e.errorf("interrupted")
			return nil, exitFailed
		}
		e.errorf("%v", err)
		return nil, exitRedis
	}
	return d, exitOK
}
