package test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisServer is a test-owned redis-server on one of this suite's ports,
// for faults a shared Redis must not suffer (OOM, password changes,
// restarts).
type redisServer struct {
	port  int
	dir   string
	args  []string
	cmd   *exec.Cmd
	admin *redis.Client
}

func startRedisServer(t *testing.T, port int, args ...string) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	rs := &redisServer{port: port, dir: t.TempDir(), args: args}
	rs.start(t)
	t.Cleanup(func() { rs.stop() })
	return rs
}

func (rs *redisServer) start(t *testing.T) {
	t.Helper()
	args := append([]string{"--port", strconv.Itoa(rs.port), "--bind", "127.0.0.1", "--dir", rs.dir, "--save", ""}, rs.args...)
	rs.cmd = exec.Command("redis-server", args...)
	if err := rs.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", rs.port)); err == nil {
			c.Close()
			break
		}
		if i > 100 {
			t.Fatalf("redis-server on %d did not start", rs.port)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (rs *redisServer) stop() {
	if rs.admin != nil {
		rs.admin.Close()
		rs.admin = nil
	}
	if rs.cmd != nil && rs.cmd.Process != nil {
		_ = rs.cmd.Process.Kill()
		_ = rs.cmd.Wait()
	}
}

// cpuSeconds is the user+system CPU time a process has used.
func cpuSeconds(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	f := strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+2:])
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// readyz returns the worker's /readyz status, 0 when it does not answer.
func readyz(addr string) int {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func waitReady(t *testing.T, addr string, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for readyz(addr) != want {
		if time.Now().After(deadline) {
			t.Fatalf("/readyz did not answer %d within %s (last %d)", want, within, readyz(addr))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Must-show 8: Redis answers errors go-redis does not retry (OOM, then a
// wrong password). The worker does not spin, /readyz says not ready, and
// both recover when Redis does.
func TestNonRetryableRedisErrorsDoNotSpin(t *testing.T) {
	if testing.Short() {
		t.Skip("measures CPU over several seconds")
	}
	rs := startRedisServer(t, freePort(t), "--requirepass", "pw-one", "--maxmemory-policy", "noeviction")
	rs.admin = redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", rs.port), Password: "pw-one"})
	e := newEnv(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	url := fmt.Sprintf("redis://:pw-one@127.0.0.1:%d/0", rs.port)
	w := e.startWorkers(1, "REDIS_URL="+url, "HTTP_ADDR="+addr)[0]
	waitReady(t, addr, 200, 30*time.Second)
	ctx := context.Background()

	faults := []struct {
		name          string
		breakIt, heal func() error
	}{
		{"OOM",
			func() error { return rs.admin.ConfigSet(ctx, "maxmemory", "1").Err() },
			func() error { return rs.admin.ConfigSet(ctx, "maxmemory", "0").Err() }},
		{"wrong password",
			func() error {
				if err := rs.admin.ConfigSet(ctx, "requirepass", "pw-two").Err(); err != nil {
					return err
				}
				return rs.admin.Do(ctx, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err()
			},
			func() error { return rs.admin.ConfigSet(ctx, "requirepass", "pw-one").Err() }},
	}
	for _, f := range faults {
		if err := f.breakIt(); err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		waitReady(t, addr, 503, 15*time.Second)
		time.Sleep(time.Second) // let any busy loop get going
		c0, t0 := cpuSeconds(t, w.cmd.Process.Pid), time.Now()
		time.Sleep(4 * time.Second)
		share := (cpuSeconds(t, w.cmd.Process.Pid) - c0) / time.Since(t0).Seconds()
		t.Logf("%s: worker used %.1f%% of a core while Redis refused it", f.name, 100*share)
		if share > 0.10 {
			t.Errorf("%s: worker used %.0f%% of a core; it spins", f.name, 100*share)
		}
		if err := f.heal(); err != nil {
			t.Fatalf("%s: heal: %v", f.name, err)
		}
		waitReady(t, addr, 200, 30*time.Second)
	}
	if !w.alive() {
		t.Fatal("worker exited")
	}
}
