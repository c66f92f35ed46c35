// Command loadharness measures retropub end to end: real worker processes
// against real Redis and the fake Confluence with configurable latency. It
// prints one table (publishes/s, calls and points per publish by case, CPU
// per publish, peak RSS, enqueue-to-done latency) and compares the rate with
// a bare Go HTTP client making the same ideal calls, and with asynq's own
// no-op task rate on the same Redis. `make bench` runs it.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"retropub/confluence/confluencetest"
	"retropub/credstore"
	"retropub/jobs"
)

type options struct {
	n, concurrency, procs, atts, repeat int
	latency                             time.Duration
	redisURL                            string
	db                                  int
	scenarios                           string
	profileDir                          string
	full                                bool
	workerEnv                           string
	cluster                             bool
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 2000, "publishes in each throughput run")
	flag.IntVar(&o.concurrency, "concurrency", 50, "WORKER_CONCURRENCY of each worker process (and the bare client's)")
	flag.IntVar(&o.procs, "procs", 1, "worker processes")
	flag.IntVar(&o.atts, "attachments", 2, "attachments per report")
	flag.IntVar(&o.repeat, "repeat", 1, "runs of each configuration (the spread is reported)")
	flag.DurationVar(&o.latency, "latency", 50*time.Millisecond, "fake Confluence latency per request")
	flag.StringVar(&o.redisURL, "redis", "", "Redis to use (default: a private redis-server the harness starts on a free port); "+
		"the database must be empty or written by an earlier harness run, and is flushed")
	flag.IntVar(&o.db, "db", 7, "Redis database, with -redis")
	flag.StringVar(&o.scenarios, "configs", "off,defaults,defaults-100", "configurations to run, in order: "+scenarioNames())
	flag.StringVar(&o.profileDir, "profile", "", "build the worker with -tags pprof and save its CPU and alloc profiles of each run here")
	flag.StringVar(&o.workerEnv, "worker-env", "", "extra VAR=value settings for the worker, comma-separated (an A/B of one setting)")
	flag.BoolVar(&o.cluster, "cluster", false, "measure every configuration on a private Redis Cluster (3 masters, 3 replicas) too, and its ratio to one Redis")
	flag.BoolVar(&o.full, "full", false, "also the gates-off figures of docs/performance.md: calls per case, 0-latency rate, asynq no-op rate, latency")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "loadharness:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// scenario is one worker configuration the harness measures against the
// bare client.
type scenario struct {
	name         string
	what         string
	integrations int // one per instance when instances > 1
	instances    int
	env          []string
}

var scenarios = []scenario{
	{"off", "every gate off", 1, 1, []string{
		"CONFLUENCE_RATE=0", "CONFLUENCE_MAX_INFLIGHT=0", "INTEGRATION_MAX_ACTIVE=0", "ATLASSIAN_POINTS_PER_HOUR=0"}},
	{"defaults", "defaults, per-instance caps raised, 1 instance", 1, 1, raisedCaps},
	{"defaults-100", "defaults, per-instance caps raised, 100 instances", 100, 100, raisedCaps},
}

// raisedCaps keeps every gate of the defaults on (rate, in-flight cap,
// per-integration cap, hourly points budget, breaker, cooldowns) but sets
// the per-instance and per-integration caps above what one worker can
// reach, so they count without binding.
var raisedCaps = []string{"CONFLUENCE_RATE=100000", "CONFLUENCE_BURST=100000", "CONFLUENCE_MAX_INFLIGHT=10000", "INTEGRATION_MAX_ACTIVE=10000"}

func scenarioNames() string {
	var names []string
	for _, s := range scenarios {
		names = append(names, s.name)
	}
	return strings.Join(names, ",")
}

func findScenarios(list string) ([]scenario, error) {
	var out []scenario
	for _, name := range strings.Split(list, ",") {
		found := false
		for _, s := range scenarios {
			if s.name == strings.TrimSpace(name) {
				out, found = append(out, s), true
			}
		}
		if !found {
			return nil, fmt.Errorf("-configs: unknown configuration %q (want %s)", name, scenarioNames())
		}
	}
	return out, nil
}

type world struct {
	o   options
	sc  scenario
	rdb redis.UniversalClient
	url string
	// clusterAddrs, when set, are the Redis Cluster's nodes: the workers
	// get REDIS_CLUSTER_ADDRS.
	clusterAddrs []string
	sites        []*confluencetest.Server
	gw           *httptest.Server
	keys         string
	bin          string
	client       *asynq.Client
	insp         *asynq.Inspector
}

func run(o options) error {
	ctx := context.Background()
	list, err := findScenarios(o.scenarios)
	if err != nil {
		return err
	}
	if o.redisURL == "" {
		addr, stop, err := startRedis()
		if err != nil {
			return err
		}
		defer stop()
		o.redisURL, o.db = "redis://"+addr+"/0", 0
	}
	opt, err := redis.ParseURL(o.redisURL)
	if err != nil {
		return fmt.Errorf("-redis: %w", err)
	}
	opt.DB = o.db
	opt.PoolSize = 200
	w := &world{o: o, rdb: redis.NewClient(opt)}
	w.url = fmt.Sprintf("redis://%s/%d", opt.Addr, o.db)
	if err := w.checkOwned(ctx); err != nil {
		return err
	}
	if err := w.flush(ctx); err != nil {
		return fmt.Errorf("redis %s: %w", opt.Addr, err)
	}
	if w.bin, err = buildWorker(o.profileDir != ""); err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Dir(w.bin))
	defer w.closeSites()

	fmt.Printf("retropub load harness: %d publishes per run, %d attachments each, %d worker process(es) × concurrency %d, fake latency %s, LOG_LEVEL=%s, Redis %s\n\n",
		o.n, o.atts, o.procs, o.concurrency, o.latency, envOr("LOAD_LOG_LEVEL", "default (info)"), opt.Addr)
	summary, single, err := w.measure(ctx, list, "")
	if err != nil {
		return err
	}
	if o.cluster {
		addrs, stop, err := startCluster()
		if err != nil {
			return err
		}
		defer stop()
		cw := *w
		cw.clusterAddrs = addrs
		cw.rdb = redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, PoolSize: 200})
		cw.url = "redis://" + addrs[0] + "/0"
		if err := cw.flush(ctx); err != nil {
			return fmt.Errorf("redis cluster: %w", err)
		}
		fmt.Printf("\nthe same on a Redis Cluster of 3 masters with a replica each (%s)\n\n", strings.Join(addrs, ","))
		csum, clustered, err := cw.measure(ctx, list, "cluster-")
		if err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		summary = append(summary, csum...)
		fmt.Println()
		fmt.Println("| configuration | one Redis publishes/s | Redis Cluster publishes/s | cluster / one Redis |")
		fmt.Println("|---|---|---|---|")
		for _, sc := range list {
			fmt.Printf("| %s | %s | %s | %.1f%% |\n", sc.what, spread(single[sc.name], "%.1f"), spread(clustered[sc.name], "%.1f"),
				100*mean(clustered[sc.name])/mean(single[sc.name]))
		}
	}
	fmt.Println()
	fmt.Println("| configuration | ratio to bare client | worker CPU per publish | retropub Redis commands per publish |")
	fmt.Println("|---|---|---|---|")
	for _, l := range summary {
		fmt.Println(l)
	}
	if o.full {
		w.sc = scenarios[0]
		return w.fullFigures(ctx)
	}
	return nil
}

// measure runs each configuration o.repeat times against the bare client,
// printing a row per run; it returns the summary rows and the publish rates
// by configuration.
func (w *world) measure(ctx context.Context, list []scenario, label string) ([]string, map[string][]float64, error) {
	o := w.o
	fmt.Println("| configuration | run | publishes/s | bare client /s | ratio | worker CPU per publish | Redis commands per publish: retropub / all |")
	fmt.Println("|---|---|---|---|---|---|---|")
	var summary []string
	rates := map[string][]float64{}
	for _, sc := range list {
		w.sc = sc
		var ratios, cpus, cmds []float64
		what := sc.what
		if w.clusterAddrs != nil {
			what += ", Redis Cluster"
		}
		for i := 1; i <= o.repeat; i++ {
			tp, err := w.throughput(ctx, o.latency, o.n, fmt.Sprintf("%s%s-%d", label, sc.name, i))
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", sc.name, err)
			}
			bare := bareClient(o.latency, o.n, o.concurrency, o.atts, sc.instances)
			ratio := 100 * tp.rate / bare
			ratios, cpus, cmds = append(ratios, ratio), append(cpus, tp.cpuMS), append(cmds, tp.ownCmds)
			rates[sc.name] = append(rates[sc.name], tp.rate)
			fmt.Printf("| %s | %d | %.1f | %.1f | %.1f%% | %.2f ms | %.2f / %.1f |\n", what, i, tp.rate, bare, ratio, tp.cpuMS, tp.ownCmds, tp.redisCmds)
		}
		summary = append(summary, fmt.Sprintf("| %s | %s | %s | %s |", what, spread(ratios, "%.1f%%"), spread(cpus, "%.2f ms"), spread(cmds, "%.2f")))
	}
	return summary, rates, nil
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(max(len(v), 1))
}

// spread prints min–max (or the one value) of a figure over the runs.
func spread(v []float64, format string) string {
	lo, hi := v[0], v[0]
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	if len(v) == 1 {
		return fmt.Sprintf(format, lo)
	}
	return fmt.Sprintf(format+" – "+format, lo, hi)
}

// fullFigures are the gates-off figures of docs/performance.md's first table.
func (w *world) fullFigures(ctx context.Context) error {
	o := w.o
	cases, err := w.callCounts(ctx)
	if err != nil {
		return err
	}
	tp0, err := w.throughput(ctx, 0, o.n, "off-0latency")
	if err != nil {
		return err
	}
	noop, err := w.noopRate(ctx, o.n)
	if err != nil {
		return err
	}
	tp, err := w.throughput(ctx, o.latency, o.n, "")
	if err != nil {
		return err
	}
	fmt.Println()
	fmt.Println("| case | Confluence calls per publish | est. points |")
	fmt.Println("|---|---|---|")
	for _, c := range cases {
		fmt.Printf("| %s | %.2f | %.2f |\n", c.name, c.calls, c.points)
	}
	fmt.Println()
	fmt.Println("| figure (every gate off) | value |")
	fmt.Println("|---|---|")
	fmt.Printf("| worker peak RSS | %.1f MiB |\n", tp.rssMiB)
	fmt.Printf("| enqueue→done p50 / p99 at half the measured rate | %s / %s |\n", tp.p50.Round(time.Millisecond), tp.p99.Round(time.Millisecond))
	fmt.Printf("| publishes/s, 0-latency fake | %.1f |\n", tp0.rate)
	fmt.Printf("| asynq no-op tasks/s, same Redis, concurrency %d | %.1f |\n", o.concurrency, noop)
	fmt.Printf("| ratio to asynq no-op | %.1f%% |\n", 100*tp0.rate/noop)
	fmt.Printf("| CPU per publish, 0-latency: worker / fake+harness / redis-server | %.2f / %.2f / %.2f ms |\n", tp0.cpuMS, tp0.harnessMS, tp0.redisMS)
	fmt.Printf("| Redis memory per published report's mapping (MEMORY USAGE) | %d bytes |\n", tp.mappingBytes)
	return nil
}

// ownerKey marks a database as the harness's own: it flushes only an
// empty database or one carrying this key.
const ownerKey = "retropub:loadharness:owner"

func (w *world) checkOwned(ctx context.Context) error {
	n, err := w.rdb.DBSize(ctx).Result()
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	if n == 0 {
		return nil
	}
	if ok, err := w.rdb.Exists(ctx, ownerKey).Result(); err != nil || ok == 0 {
		return fmt.Errorf("-redis %s db %d holds %d keys the harness did not write; refusing to flush it (leave -redis out for a private redis-server)", w.url, w.o.db, n)
	}
	return nil
}

// startRedis runs a private redis-server on a free loopback port.
func startRedis() (addr string, stop func(), err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr = l.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	l.Close()
	cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start redis-server (install it, or pass -redis): %w", err)
	}
	stop = func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	for i := 0; ; i++ {
		if c.Ping(context.Background()).Err() == nil {
			return addr, stop, nil
		}
		if i == 100 {
			stop()
			return "", nil, fmt.Errorf("redis-server on %s did not answer", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func buildWorker(profiling bool) (string, error) {
	dir, err := os.MkdirTemp("", "retropub-load-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "worker")
	args := []string{"build", "-o", bin}
	if profiling {
		args = append(args, "-tags", "pprof")
	}
	cmd := exec.Command("go", append(args, "retropub/cmd/worker")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return bin, cmd.Run()
}

// setup gives the world fresh fake sites behind one gateway, a key and
// integrations (one per site when the scenario has several instances).
func (w *world) setup(ctx context.Context, latency time.Duration) error {
	if err := w.flush(ctx); err != nil {
		return err
	}
	w.closeSites()
	for i := 0; i < w.sc.instances; i++ {
		s := confluencetest.New(confluencetest.Options{CloudID: fmt.Sprintf("00000000-0000-0000-0000-%012d", i)})
		s.AddSpace("ENG", "Engineering")
		s.AddAccessToken("load-token")
		w.sites = append(w.sites, s)
	}
	w.gw = httptest.NewServer(confluencetest.Router(w.sites...))
	kid, key := credstore.GenerateKey()
	w.keys = kid + ":" + key
	keys, _ := credstore.ParseKeys(w.keys)
	store := credstore.New(w.rdb, keys)
	for i := 0; i < w.sc.integrations; i++ {
		err := store.Put(ctx, &credstore.Record{ID: fmt.Sprintf("load-%d", i), Flavor: "cloud", CloudID: w.site(i).CloudID(),
			Auth: credstore.Auth{Kind: "oauth2", AccessToken: "load-token", ExpiresAt: time.Now().Add(24 * time.Hour)}})
		if err != nil {
			return err
		}
	}
	// Warm the parents so the run measures report pages, as in steady state.
	for i := 0; i < w.sc.integrations; i++ {
		if _, err := w.enqueue(ctx, payload(i, fmt.Sprintf("warm-%d", i), 1, w.o.atts, "")); err != nil {
			return err
		}
	}
	for _, s := range w.sites {
		s.SetLatency(latency)
	}
	return nil
}

// site is the fake site of integration i.
func (w *world) site(integration int) *confluencetest.Server {
	return w.sites[integration%len(w.sites)]
}

func (w *world) closeSites() {
	if w.gw != nil {
		w.gw.Close()
	}
	for _, s := range w.sites {
		s.Close()
	}
	w.sites, w.gw = nil, nil
}

func (w *world) requests() []confluencetest.Request {
	var out []confluencetest.Request
	for _, s := range w.sites {
		out = append(out, s.Requests()...)
	}
	return out
}

func (w *world) resetRequests() {
	for _, s := range w.sites {
		s.ResetRequests()
	}
}

// waitWarm waits for the parent-creating publishes of setup.
func (w *world) waitWarm() error {
	warm := map[string]time.Time{}
	for i := 0; i < w.sc.integrations; i++ {
		warm[payload(i, fmt.Sprintf("warm-%d", i), 1, 0, "").TaskID()] = time.Now()
	}
	_, err := w.waitAll(warm, 2*time.Minute)
	return err
}

type worker struct {
	cmd       *exec.Cmd
	done      chan struct{}
	pprofAddr string // with -profile
}

func (w *world) startWorkers() []*worker {
	var ws []*worker
	for i := 0; i < w.o.procs; i++ {
		cmd := exec.Command(w.bin)
		cmd.Env = append([]string{
			"REDIS_URL=" + w.url, "REDIS_CLUSTER_ADDRS=" + strings.Join(w.clusterAddrs, ","), "CREDSTORE_KEYS=" + w.keys, "ATLASSIAN_API_URL=" + w.gw.URL,
			"CONFLUENCE_ALLOW_CIDRS=127.0.0.1/32,::1/128", "HTTP_ADDR=127.0.0.1:0",
			"WORKER_CONCURRENCY=" + strconv.Itoa(w.o.concurrency), "WORKER_POLL_INTERVAL=20ms",
		}, w.sc.env...)
		if w.o.workerEnv != "" {
			cmd.Env = append(cmd.Env, strings.Split(w.o.workerEnv, ",")...)
		}
		if lvl := os.Getenv("LOAD_LOG_LEVEL"); lvl != "" {
			cmd.Env = append(cmd.Env, "LOG_LEVEL="+lvl)
		}
		wk := &worker{cmd: cmd, done: make(chan struct{})}
		if w.o.profileDir != "" {
			wk.pprofAddr = freeAddr()
			cmd.Env = append(cmd.Env, "PPROF_ADDR="+wk.pprofAddr)
		}
		// The logs go to a file, formatted and written as in production,
		// kept next to the worker binary for a look after a failed run.
		logf, err := os.OpenFile(filepath.Join(filepath.Dir(w.bin), fmt.Sprintf("worker-%d.log", i)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			panic(err)
		}
		cmd.Stderr = logf
		if err := cmd.Start(); err != nil {
			panic(err)
		}
		go func() { _ = cmd.Wait(); logf.Close(); close(wk.done) }()
		ws = append(ws, wk)
	}
	return ws
}

func stopWorkers(ws []*worker) (cpuMS float64, rssMiB float64) {
	for _, wk := range ws {
		u, s := procCPU(wk.cmd.Process.Pid)
		cpuMS += u + s
		rssMiB = max(rssMiB, procHWM(wk.cmd.Process.Pid))
		_ = wk.cmd.Process.Signal(os.Interrupt)
	}
	for _, wk := range ws {
		select {
		case <-wk.done:
		case <-time.After(40 * time.Second):
			_ = wk.cmd.Process.Kill()
		}
	}
	return cpuMS, rssMiB
}

// procCPU reads user and system CPU milliseconds from /proc/<pid>/stat.
func procCPU(pid int) (user, sys float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return ut * 10, st * 10 // clock ticks of 10 ms
}

// procHWM is the peak resident set (VmHWM) in MiB.
func procHWM(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

func payload(integ int, id string, rev int64, atts int, summary string) *jobs.PublishPayload {
	p := &jobs.PublishPayload{
		Schema: 1, IntegrationID: fmt.Sprintf("load-%d", integ),
		Report: jobs.Report{ID: id, Revision: rev, Kind: jobs.KindRetrospective, Title: "Load " + id, Team: "Load",
			Summary:  summary,
			Sections: []jobs.Section{{Name: "Went well", Items: []jobs.Item{{Text: "fast", Votes: 3}, {Text: "calm", Votes: 1}}}},
			Actions:  []jobs.Action{{Text: "measure", Assignee: "Ops"}}},
		Target: jobs.Target{SpaceKey: "ENG"},
	}
	for a := 0; a < atts; a++ {
		p.Attachments = append(p.Attachments, jobs.Attachment{Filename: fmt.Sprintf("chart-%d.png", a), ContentType: "image/png",
			DataBase64: base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{byte(a)}, 2048))})
	}
	return p
}

func (w *world) enqueue(ctx context.Context, p *jobs.PublishPayload) (string, error) {
	res, err := jobs.EnqueuePublish(ctx, w.client, w.insp, p, jobs.EnqueueOptions{})
	if err != nil {
		return "", err
	}
	return res.TaskID, nil
}

// waitAll waits until every id is completed. It polls queue counts, which
// is cheap, then checks each id once at the end.
func (w *world) waitAll(ids map[string]time.Time, limit time.Duration) (map[string]time.Time, error) {
	deadline := time.Now().Add(limit)
	base := w.completedCount() - w.completedOf(ids)
	for w.completedCount()-base < len(ids) {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d publishes done after %s", w.completedCount()-base, len(ids), limit)
		}
		if archived, _ := w.insp.ListArchivedTasks("default", asynq.PageSize(1)); len(archived) > 0 {
			return nil, fmt.Errorf("a publish was archived: %s", archived[0].LastErr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The base may have been low (tasks finishing while it was counted):
	// make sure of each id.
	done := map[string]time.Time{}
	for id := range ids {
		for {
			info, err := w.insp.GetTaskInfo("default", id)
			if err == nil && info.State == asynq.TaskStateCompleted {
				done[id] = info.CompletedAt
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("task %s not completed: %v", id, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return done, nil
}

func (w *world) completedCount() int {
	q, err := w.insp.GetQueueInfo("default")
	if err != nil {
		return 0
	}
	return q.Completed
}

// completedOf counts the ids already completed (before polling starts).
func (w *world) completedOf(ids map[string]time.Time) int {
	n := 0
	for id := range ids {
		if info, err := w.insp.GetTaskInfo("default", id); err == nil && info.State == asynq.TaskStateCompleted {
			n++
		}
	}
	return n
}

// finishTimes reads, from the fake's log, when each report's last request
// (its attachment upload) was answered: the publish is done just after.
func (w *world) finishTimes() map[string]time.Time {
	titleByPage := map[string]string{}
	for _, s := range w.sites {
		for _, p := range s.Pages("ENG") {
			titleByPage[p.ID] = strings.TrimPrefix(p.Title, "Load ")
		}
	}
	out := map[string]time.Time{}
	for _, r := range w.requests() {
		parts := strings.Split(r.Path, "/")
		for i, part := range parts {
			if part == "content" && i+1 < len(parts) {
				if id, ok := titleByPage[parts[i+1]]; ok && r.Time.After(out[id]) {
					out[id] = r.Time
				}
			}
		}
	}
	return out
}

type throughputResult struct {
	rate, cpuMS, rssMiB float64
	p50, p99            time.Duration
	// What else ran on the same cores while the backlog drained, per
	// publish: this process (the fake Confluence and the harness's own
	// polling) and redis-server; and Redis commands (ours, asynq's and the
	// harness's polling).
	harnessMS, redisMS, redisCmds float64
	// ownCmds: commands per publish naming a retropub key (MONITOR pass).
	ownCmds      float64
	mappingBytes int64 // MEMORY USAGE of one report's mapping
}

// redisStats reads redis-server's CPU ms and commands processed so far.
// On a cluster, the sums over its masters.
func (w *world) redisStats(ctx context.Context) (cpuMS, cmds float64) {
	var mu sync.Mutex
	_ = w.eachServer(ctx, func(c *redis.Client) error {
		info, err := c.Info(ctx, "cpu", "stats").Result()
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, l := range strings.Split(info, "\r\n") {
			k, v, _ := strings.Cut(l, ":")
			f, _ := strconv.ParseFloat(v, 64)
			switch k {
			case "used_cpu_user", "used_cpu_sys":
				cpuMS += f * 1000
			case "total_commands_processed":
				cmds += f
			}
		}
		return nil
	})
	return cpuMS, cmds
}

// mappingBytes is the Redis memory of one published report's mapping.
func (w *world) mappingBytes(ctx context.Context) int64 {
	var mu sync.Mutex
	var n int64
	_ = w.eachServer(ctx, func(c *redis.Client) error {
		keys, _, err := c.Scan(ctx, 0, "retropub:map:*", 1000).Result()
		if err != nil || len(keys) == 0 {
			return err
		}
		m, _ := c.MemoryUsage(ctx, keys[0]).Result()
		mu.Lock()
		n = max(n, m)
		mu.Unlock()
		return nil
	})
	return n
}

func (w *world) throughput(ctx context.Context, latency time.Duration, n int, label string) (throughputResult, error) {
	var r throughputResult
	if err := w.setup(ctx, latency); err != nil {
		return r, err
	}
	ws := w.startWorkers()
	if err := w.waitWarm(); err != nil {
		stopWorkers(ws)
		return r, err
	}
	// The backlog is enqueued with the queue paused, so the rate measures
	// the workers, not the enqueuer competing with them for the CPU.
	if err := w.insp.PauseQueue("default"); err != nil {
		stopWorkers(ws)
		return r, err
	}
	ids := make(map[string]time.Time, n)
	for i := 0; i < n; i++ {
		id, err := w.enqueue(ctx, payload(i%w.sc.integrations, fmt.Sprintf("r%d", i), 1, w.o.atts, ""))
		if err != nil {
			stopWorkers(ws)
			return r, err
		}
		ids[id] = time.Now()
	}
	cpu0 := workersCPU(ws)
	hu0, hs0 := procCPU(os.Getpid())
	rcpu0, rcmd0 := w.redisStats(ctx)
	start := time.Now()
	profiled := w.profile(ws, latency, n, label)
	if err := w.insp.UnpauseQueue("default"); err != nil {
		stopWorkers(ws)
		return r, err
	}
	_, err := w.waitAll(ids, 20*time.Minute)
	if err != nil {
		stopWorkers(ws)
		return r, err
	}
	last := start
	for _, t := range w.finishTimes() {
		if t.After(last) {
			last = t
		}
	}
	r.rate = float64(n) / last.Sub(start).Seconds()
	r.cpuMS = (workersCPU(ws) - cpu0) / float64(n)
	hu, hs := procCPU(os.Getpid())
	rcpu, rcmd := w.redisStats(ctx)
	r.harnessMS, r.redisMS, r.redisCmds = (hu+hs-hu0-hs0)/float64(n), (rcpu-rcpu0)/float64(n), (rcmd-rcmd0)/float64(n)
	r.mappingBytes = w.mappingBytes(ctx)
	<-profiled
	if r.ownCmds, err = w.countOwnCommands(ctx, max(n/10, 100)); err != nil {
		stopWorkers(ws)
		return r, err
	}
	if w.o.full && latency > 0 {
		r.p50, r.p99, err = w.latency(ctx, r.rate/2, n/4)
	}
	_, r.rssMiB = stopWorkers(ws)
	return r, err
}

// profile fetches the first worker's CPU and alloc profiles over most of
// the run (its length estimated from the ideal rate) into -profile.
func (w *world) profile(ws []*worker, latency time.Duration, n int, label string) <-chan struct{} {
	done := make(chan struct{})
	if w.o.profileDir == "" || label == "" {
		close(done)
		return done
	}
	ideal := float64(w.o.concurrency*w.o.procs) / (2 * max(latency, time.Millisecond).Seconds())
	secs := max(int(0.7*float64(n)/ideal), 1)
	var wg sync.WaitGroup
	for _, kind := range []string{"profile", "allocs"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			url := fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", ws[0].pprofAddr, kind, secs)
			name := filepath.Join(w.o.profileDir, label+"-"+map[string]string{"profile": "cpu", "allocs": "allocs"}[kind]+".pprof")
			if err := fetchTo(url, name); err != nil {
				fmt.Fprintln(os.Stderr, "loadharness: profile:", err)
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	return done
}

func fetchTo(url, name string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// countOwnCommands publishes m more reports with MONITOR on and counts the
// commands that name a retropub key (scripts count once, their inner calls
// not at all): Redis commands per publish beyond asynq's own. MONITOR
// slows Redis, so this pass is separate from the timed one.
func (w *world) countOwnCommands(ctx context.Context, m int) (float64, error) {
	var own atomic.Int64
	// LOAD_MONITOR_DUMP=file keeps the counted commands for a look.
	var dump *os.File
	var dumpMu sync.Mutex
	if name := os.Getenv("LOAD_MONITOR_DUMP"); name != "" {
		var err error
		if dump, err = os.Create(name); err != nil {
			return 0, err
		}
		defer dump.Close()
	}
	// One MONITOR per server holding data (each master of a cluster).
	var readers sync.WaitGroup
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for _, addr := range w.masters(ctx) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return 0, err
		}
		conns = append(conns, conn)
		if _, err := fmt.Fprintf(conn, "MONITOR\r\n"); err != nil {
			return 0, err
		}
		rd := bufio.NewReader(conn)
		if line, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
			return 0, fmt.Errorf("MONITOR: %q %v", line, err)
		}
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				line, err := rd.ReadString('\n')
				if err != nil {
					return
				}
				// +1733450000.123456 [7 127.0.0.1:5555] "evalsha" "…" "6" "retropub:gate:…"
				_, rest, ok := strings.Cut(line, "]")
				if !ok || strings.Contains(line[:len(line)-len(rest)], "lua") {
					continue
				}
				if strings.Contains(rest, `"retropub:`) && !strings.Contains(rest, ownerKey) {
					own.Add(1)
					if dump != nil {
						dumpMu.Lock()
						fmt.Fprint(dump, rest)
						dumpMu.Unlock()
					}
				}
			}
		}()
	}
	ids := map[string]time.Time{}
	for i := 0; i < m; i++ {
		id, err := w.enqueue(ctx, payload(i%w.sc.integrations, fmt.Sprintf("m%d", i), 1, w.o.atts, ""))
		if err != nil {
			return 0, err
		}
		ids[id] = time.Now()
	}
	if _, err := w.waitAll(ids, 10*time.Minute); err != nil {
		return 0, err
	}
	time.Sleep(300 * time.Millisecond) // the last reports and lease returns
	for _, c := range conns {
		c.Close()
	}
	readers.Wait()
	return float64(own.Load()) / float64(m), nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func workersCPU(ws []*worker) float64 {
	total := 0.0
	for _, wk := range ws {
		u, s := procCPU(wk.cmd.Process.Pid)
		total += u + s
	}
	return total
}

// latency enqueues n publishes at a steady rate (open loop) and reads the
// time from each enqueue to its last Confluence request.
func (w *world) latency(ctx context.Context, rate float64, n int) (p50, p99 time.Duration, err error) {
	w.resetRequests()
	ids := map[string]time.Time{}
	enqueuedAt := map[string]time.Time{}
	tick := time.Duration(float64(time.Second) / max(rate, 1))
	start := time.Now()
	for i := 0; i < n; i++ {
		time.Sleep(time.Until(start.Add(time.Duration(i) * tick)))
		rid := fmt.Sprintf("lat%d", i)
		id, err := w.enqueue(ctx, payload(i%w.sc.integrations, rid, 1, w.o.atts, ""))
		if err != nil {
			return 0, 0, err
		}
		ids[id], enqueuedAt[rid] = time.Now(), time.Now()
	}
	if _, err := w.waitAll(ids, 10*time.Minute); err != nil {
		return 0, 0, err
	}
	var lat []time.Duration
	for rid, t := range w.finishTimes() {
		if at, ok := enqueuedAt[rid]; ok {
			lat = append(lat, t.Sub(at))
		}
	}
	if len(lat) == 0 {
		return 0, 0, fmt.Errorf("no latency samples")
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat[len(lat)/2], lat[len(lat)*99/100], nil
}

type callCase struct {
	name          string
	calls, points float64
}

// callCounts publishes a few reports through each case and reads the
// fake's request log. Points: a write 1, a GET 1 + objects returned (≈1).
func (w *world) callCounts(ctx context.Context) ([]callCase, error) {
	if err := w.setup(ctx, 0); err != nil {
		return nil, err
	}
	ws := w.startWorkers()
	defer stopWorkers(ws)
	if err := w.waitWarm(); err != nil {
		return nil, err
	}
	const k = 10
	step := func(name string, rev int64, mutate func(p *jobs.PublishPayload)) (callCase, error) {
		w.resetRequests()
		ids := map[string]time.Time{}
		for i := 0; i < k; i++ {
			p := payload(0, fmt.Sprintf("count-%d", i), rev, w.o.atts, "")
			mutate(p)
			id, err := w.enqueue(ctx, p)
			if err != nil {
				return callCase{}, err
			}
			ids[id] = time.Now()
		}
		if _, err := w.waitAll(ids, time.Minute); err != nil {
			return callCase{}, err
		}
		c := callCase{name: name}
		for _, r := range w.requests() {
			c.calls++
			c.points++
			if r.Method == "GET" {
				c.points++
			}
		}
		c.calls /= k
		c.points /= k
		return c, nil
	}
	var out []callCase
	for _, s := range []struct {
		name   string
		rev    int64
		mutate func(*jobs.PublishPayload)
	}{
		{fmt.Sprintf("first publish, known parent, %d attachments", w.o.atts), 1, func(*jobs.PublishPayload) {}},
		{"unchanged republish", 2, func(*jobs.PublishPayload) {}},
		{"changed body", 3, func(p *jobs.PublishPayload) { p.Report.Summary = "changed" }},
		{"changed attachment", 4, func(p *jobs.PublishPayload) {
			p.Report.Summary = "changed"
			p.Attachments[0].DataBase64 = base64.StdEncoding.EncodeToString([]byte("new bytes"))
		}},
	} {
		c, err := step(s.name, s.rev, s.mutate)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// flush empties the database and makes a new asynq client: a client
// remembers which queues it registered and would not register them again.
func (w *world) flush(ctx context.Context) error {
	if err := w.eachServer(ctx, func(c *redis.Client) error { return c.FlushDB(ctx).Err() }); err != nil {
		return err
	}
	if err := w.rdb.Set(ctx, ownerKey, "the retropub load harness flushes this database", 0).Err(); err != nil {
		return err
	}
	w.client = asynq.NewClientFromRedisClient(w.rdb)
	w.insp = asynq.NewInspectorFromRedisClient(w.rdb)
	return nil
}

// noopRate is asynq's own ceiling on this Redis: a handler that does nothing.
func (w *world) noopRate(ctx context.Context, n int) (float64, error) {
	if err := w.flush(ctx); err != nil {
		return 0, err
	}
	var count atomic.Int64
	all := make(chan struct{})
	mux := asynq.NewServeMux()
	mux.HandleFunc("noop", func(context.Context, *asynq.Task) error {
		if count.Add(1) == int64(n) {
			close(all)
		}
		return nil
	})
	srv := asynq.NewServerFromRedisClient(w.rdb, asynq.Config{Concurrency: w.o.concurrency, TaskCheckInterval: 20 * time.Millisecond,
		Logger: quiet{}, LogLevel: asynq.ErrorLevel})
	for i := 0; i < n; i++ {
		if _, err := w.client.Enqueue(asynq.NewTask("noop", nil), asynq.Retention(time.Hour)); err != nil {
			return 0, err
		}
	}
	start := time.Now()
	if err := srv.Start(mux); err != nil {
		return 0, err
	}
	<-all
	rate := float64(n) / time.Since(start).Seconds()
	srv.Shutdown()
	return rate, nil
}

type quiet struct{}

func (quiet) Debug(...any) {}
func (quiet) Info(...any)  {}
func (quiet) Warn(...any)  {}
func (quiet) Error(...any) {}
func (quiet) Fatal(...any) {}

// bareClient makes the ideal calls of a first publish under a known parent
// (POST page, one multipart POST with every attachment) at the same
// concurrency against a fresh fake with the same latency.
func bareClient(latency time.Duration, n, concurrency, atts, instances int) float64 {
	type site struct{ base, spaceID, home string }
	var sites []site
	var fakes []*confluencetest.Server
	for i := 0; i < instances; i++ {
		fake := confluencetest.New(confluencetest.Options{CloudID: fmt.Sprintf("00000000-0000-0000-0000-%012d", i)})
		spaceID, home := fake.AddSpace("ENG", "Engineering")
		fake.AddAccessToken("bare")
		fake.SetLatency(latency)
		fakes = append(fakes, fake)
		sites = append(sites, site{spaceID: spaceID, home: home, base: "/ex/confluence/" + fake.CloudID() + "/wiki"})
	}
	gw := httptest.NewServer(confluencetest.Router(fakes...))
	defer gw.Close()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = concurrency
	hc := &http.Client{Transport: tr}
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for g := 0; g < concurrency; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				st := sites[int(i)%len(sites)]
				base := gw.URL + st.base
				body, _ := json.Marshal(map[string]any{"spaceId": st.spaceID, "status": "current", "title": fmt.Sprintf("bare %d", i), "parentId": st.home,
					"body": map[string]string{"representation": "storage", "value": "<p>bare</p>"}})
				var page struct{ ID string }
				if err := call(hc, "POST", base+"/api/v2/pages", "application/json", bytes.NewReader(body), &page); err != nil {
					continue
				}
				var mp bytes.Buffer
				mw := multipart.NewWriter(&mp)
				for a := 0; a < atts; a++ {
					fw, _ := mw.CreateFormFile("file", fmt.Sprintf("chart-%d.png", a))
					fw.Write(bytes.Repeat([]byte{byte(a)}, 2048))
				}
				for a := 0; a < atts; a++ {
					mw.WriteField("comment", "sha256:x")
				}
				mw.Close()
				_ = call(hc, "POST", base+"/rest/api/content/"+page.ID+"/child/attachment", mw.FormDataContentType(), &mp, nil)
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

func call(hc *http.Client, method, url, ct string, body io.Reader, out any) error {
	req, _ := http.NewRequest(method, url, body)
	req.Header.Set("Authorization", "Bearer bare")
	req.Header.Set("Content-Type", ct)
	req.Header.Set("X-Atlassian-Token", "no-check")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s %s: %d", method, url, resp.StatusCode)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}
