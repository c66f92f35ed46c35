package test

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// Load figures for the resilience issue (must-show 2 and 6). They run real
// worker processes and report metrics; nothing here asserts wall-clock
// time. Run: go test -run '^$' -bench 'BreakerIsolation|Fairness' -benchtime 1x ./test/

func benchN(def int) int {
	if n, err := strconv.Atoi(os.Getenv("RETROPUB_BENCH_N")); err == nil && n > 0 {
		return n
	}
	return def
}

// stop kills worker processes at the end of a phase.
func stop(ps []*proc) {
	for _, p := range ps {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// benchFleet is ten sites with 20 ms of latency each and four worker
// processes of the given concurrency.
func benchFleet(b *testing.B, concurrency int) (*env, *fleet, []*proc) {
	e := newEnv(b)
	f := e.newFleet(10)
	for _, s := range f.sites {
		s.SetLatency(20 * time.Millisecond)
	}
	ws := e.startWorkers(4, f.env("WORKER_CONCURRENCY="+strconv.Itoa(concurrency), "LOG_LEVEL=warn")...)
	return e, f, ws
}

// healthyRun publishes n reports on sites 1..9 and returns how long they
// took; with bad, site 0 answers 503 throughout and has its own reports.
func healthyRun(b *testing.B, n int, bad bool) (took time.Duration, badRequests int) {
	e, f, ws := benchFleet(b, 8)
	defer stop(ws)
	var badIDs []string
	if bad {
		f.sites[0].Outage(time.Now().Add(time.Hour), 503)
		badIDs = e.enqueueMany(f.integration(0), "bad", n)
	}
	start := time.Now()
	var ids []string
	for i := 1; i < 10; i++ {
		ids = append(ids, e.enqueueMany(f.integration(i), "good", n)...)
	}
	e.waitCompleted("default", ids, 10*time.Minute)
	took = time.Since(start)
	if bad {
		badRequests = len(f.sites[0].Requests())
		f.sites[0].Outage(time.Time{}, 0)
		e.waitCompleted("default", badIDs, 10*time.Minute)
		e.onePageEach(f, 0, "bad", n)
	}
	for i := 1; i < 10; i++ {
		e.onePageEach(f, i, "good", n)
	}
	return took, badRequests
}

// BenchmarkBreakerIsolation: nine healthy sites' throughput with and
// without a tenth answering 503 the whole time.
func BenchmarkBreakerIsolation(b *testing.B) {
	n := benchN(60)
	for b.Loop() {
		alone, _ := healthyRun(b, n, false)
		withBad, badReqs := healthyRun(b, n, true)
		tasks := float64(9 * n)
		b.ReportMetric(tasks/alone.Seconds(), "healthy-tasks/s-alone")
		b.ReportMetric(tasks/withBad.Seconds(), "healthy-tasks/s-with-bad")
		b.ReportMetric(100*(withBad.Seconds()/alone.Seconds()-1), "%slower")
		b.ReportMetric(float64(badReqs), "requests-to-bad-site")
	}
}

// fairRun times nine integrations' ten reports each, after an optional
// backfill of the first integration.
func fairRun(b *testing.B, backfill int) time.Duration {
	e, f, ws := benchFleet(b, 20)
	defer stop(ws)
	var big []string
	if backfill > 0 {
		big = e.enqueueMany(f.integration(0), "backfill", backfill)
	}
	start := time.Now()
	var ids []string
	for i := 1; i < 10; i++ {
		ids = append(ids, e.enqueueMany(f.integration(i), "small", 10)...)
	}
	e.waitCompleted("default", ids, 10*time.Minute)
	took := time.Since(start)
	if backfill > 0 {
		e.waitCompleted("default", big, 20*time.Minute)
	}
	return took
}

// BenchmarkFairness: must-show 6, 2,000 reports of one integration, then
// nine others with ten each.
func BenchmarkFairness(b *testing.B) {
	n := benchN(2000)
	for b.Loop() {
		alone := fairRun(b, 0)
		withBackfill := fairRun(b, n)
		b.ReportMetric(alone.Seconds(), "nine-alone-s")
		b.ReportMetric(withBackfill.Seconds(), "nine-behind-backfill-s")
		b.ReportMetric(100*(withBackfill.Seconds()/alone.Seconds()-1), "%slower")
	}
}
