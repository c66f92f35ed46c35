package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// With -cluster the harness measures each configuration twice in one run:
// on its single redis-server and on a private Redis Cluster of three
// masters with a replica each (DESIGN §12), and reports the ratio.

// startCluster runs six cluster-enabled redis-servers on loopback, joins
// them with redis-cli --cluster create (one replica per master) and waits
// until every node serves every slot.
func startCluster() (addrs []string, stop func(), err error) {
	var cmds []*exec.Cmd
	var dirs []string
	stop = func() {
		for _, c := range cmds {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
		for _, d := range dirs {
			os.RemoveAll(d)
		}
	}
	for range 6 {
		port, err := clusterPort()
		if err != nil {
			stop()
			return nil, nil, err
		}
		dir, err := os.MkdirTemp("", "retropub-load-cluster-")
		if err != nil {
			stop()
			return nil, nil, err
		}
		dirs = append(dirs, dir)
		c := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
			"--save", "", "--appendonly", "no", "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000")
		if err := c.Start(); err != nil {
			stop()
			return nil, nil, fmt.Errorf("start redis-server: %w", err)
		}
		cmds = append(cmds, c)
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", port))
	}
	for _, a := range addrs {
		if err := waitPing(a); err != nil {
			stop()
			return nil, nil, err
		}
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	if out, err := exec.Command("redis-cli", append(args, "--cluster-replicas", "1", "--cluster-yes")...).CombinedOutput(); err != nil {
		stop()
		return nil, nil, fmt.Errorf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		deadline := time.Now().Add(30 * time.Second)
		for {
			info, err := c.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				c.Close()
				stop()
				return nil, nil, fmt.Errorf("cluster node %s not ready", a)
			}
			time.Sleep(100 * time.Millisecond)
		}
		c.Close()
	}
	return addrs, stop, nil
}

// clusterPort is a free loopback port whose bus port (+10000) is free too.
func clusterPort() (int, error) {
	for range 200 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if p >= 55536 {
			continue
		}
		if b, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+10000)); err == nil {
			b.Close()
			return p, nil
		}
	}
	return 0, fmt.Errorf("no free port pair for a cluster node")
}

func waitPing(addr string) error {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	for i := 0; ; i++ {
		if c.Ping(context.Background()).Err() == nil {
			return nil
		}
		if i == 100 {
			return fmt.Errorf("redis-server on %s did not answer", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// masters returns the address of every server holding data: the one
// redis-server, or each master of the cluster.
func (w *world) masters(ctx context.Context) []string {
	cc, ok := w.rdb.(*redis.ClusterClient)
	if !ok {
		return []string{w.rdb.(*redis.Client).Options().Addr}
	}
	var mu sync.Mutex
	var out []string
	_ = cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		out = append(out, m.Options().Addr)
		return nil
	})
	return out
}

// eachServer runs fn on a client of every server holding data.
func (w *world) eachServer(ctx context.Context, fn func(*redis.Client) error) error {
	if cc, ok := w.rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return fn(m) })
	}
	return fn(w.rdb.(*redis.Client))
}
