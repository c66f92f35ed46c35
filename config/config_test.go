package config

import (
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.WorkerConcurrency != 20 || c.WorkerShutdownTimeout != 30*time.Second || c.WorkerPollInterval != 100*time.Millisecond ||
		c.WorkerQueues["critical"] != 6 || c.ConfluenceMaxInflight != 10 || c.AttachmentMaxBytes != 100<<20 ||
		c.AtlassianAPIURL != "https://api.atlassian.com" || c.AtlassianPointsPerHour != 65000 || !c.DashboardReadOnly {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestBadValuesNameTheVariable(t *testing.T) {
	cases := map[string]string{
		"WORKER_CONCURRENCY":      "many",
		"WORKER_QUEUES":           "critical",
		"WORKER_SHUTDOWN_TIMEOUT": "30",
		"REDIS_URL":               "http://x",
		"LOG_LEVEL":               "loud",
		"CONFLUENCE_ALLOW_CIDRS":  "10.0.0.0/99",
		"ATLASSIAN_API_URL":       "ftp://x",
		"DASHBOARD_READONLY":      "maybe",
	}
	for name, bad := range cases {
		_, err := Load(env(map[string]string{name: bad}))
		if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), bad) {
			t.Errorf("%s=%s: %v", name, bad, err)
		}
	}
}

func TestSecretsNotEchoed(t *testing.T) {
	_, err := Load(env(map[string]string{"DASHBOARD_PASSWORD": "hunter2", "REDIS_URL": "redis://u:pw-secret@h:1/x/y?z", "LOG_LEVEL": "x"}))
	if err == nil || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "pw-secret") {
		t.Fatalf("%v", err)
	}
}

func TestCIDRs(t *testing.T) {
	c, err := Load(env(map[string]string{"CONFLUENCE_ALLOW_CIDRS": "10.0.0.0/8, 127.0.0.1, ::1"}))
	if err != nil || len(c.ConfluenceAllowCIDRs) != 3 {
		t.Fatalf("%v %v", c, err)
	}
}

func TestRedisTopologies(t *testing.T) {
	c, err := Load(env(map[string]string{"REDIS_CLUSTER_ADDRS": "10.0.0.1:7000, redis-1:7001", "REDIS_URL": "redis://:pw@ignored:1"}))
	if err != nil || len(c.RedisClusterAddrs) != 2 || c.RedisClusterAddrs[1] != "redis-1:7001" {
		t.Fatalf("cluster: %+v %v", c, err)
	}
	bad := []struct {
		env  map[string]string
		want []string // every variable the message must name
	}{
		{map[string]string{"REDIS_CLUSTER_ADDRS": "a:1", "REDIS_SENTINEL_ADDRS": "s:26379", "REDIS_SENTINEL_MASTER": "m"},
			[]string{"REDIS_CLUSTER_ADDRS", "REDIS_SENTINEL_ADDRS"}},
		{map[string]string{"REDIS_CLUSTER_ADDRS": "a:1,redis-2"}, []string{"REDIS_CLUSTER_ADDRS", `"redis-2"`}},
		{map[string]string{"REDIS_CLUSTER_ADDRS": "a:99999"}, []string{"REDIS_CLUSTER_ADDRS", "a:99999"}},
		{map[string]string{"REDIS_CLUSTER_ADDRS": ":7000"}, []string{"REDIS_CLUSTER_ADDRS"}},
		{map[string]string{"REDIS_SENTINEL_ADDRS": "s1:26379,s2", "REDIS_SENTINEL_MASTER": "m"}, []string{"REDIS_SENTINEL_ADDRS", `"s2"`}},
		{map[string]string{"REDIS_CLUSTER_ADDRS": "a:1", "REDIS_URL": "redis://:pw-secret@h:1/3"}, []string{"REDIS_URL", "database 0"}},
	}
	for _, b := range bad {
		_, err := Load(env(b.env))
		if err == nil {
			t.Errorf("%v: accepted", b.env)
			continue
		}
		for _, w := range b.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: %v does not name %s", b.env, err, w)
			}
		}
		if strings.Contains(err.Error(), "pw-secret") {
			t.Errorf("the password leaked: %v", err)
		}
	}
}
