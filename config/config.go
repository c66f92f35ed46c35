// Package config reads every retropub setting from the environment and
// validates it once, at start-up.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config holds plain values; it knows nothing of the parts that use them.
// Each field names its environment variable and its default; Load reads
// them all and refuses a bad value naming the variable.
type Config struct {
	// RedisURL is Redis (redis:// or rediss://, with credentials and
	// database). REDIS_URL, default redis://127.0.0.1:6379/0.
	RedisURL string
	// RedisSentinelAddrs are Sentinel host:port seeds; with
	// RedisSentinelMaster they replace REDIS_URL's host.
	// REDIS_SENTINEL_ADDRS, default none.
	RedisSentinelAddrs []string
	// RedisSentinelMaster is the monitored master's name.
	// REDIS_SENTINEL_MASTER, default none.
	RedisSentinelMaster string
	// RedisClusterAddrs are seed nodes of a Redis Cluster (host:port);
	// REDIS_URL then carries only the credentials. REDIS_CLUSTER_ADDRS,
	// default none; excludes the Sentinel variables.
	RedisClusterAddrs []string

	// WorkerConcurrency is how many tasks one worker runs at once.
	// WORKER_CONCURRENCY, default 20.
	WorkerConcurrency int
	// WorkerQueues are asynq's queue weights. WORKER_QUEUES, default
	// critical=6,default=3,low=1.
	WorkerQueues map[string]int
	// WorkerShutdownTimeout is how long running tasks get after SIGTERM.
	// WORKER_SHUTDOWN_TIMEOUT, default 30s.
	WorkerShutdownTimeout time.Duration
	// WorkerPollInterval is asynq's TaskCheckInterval.
	// WORKER_POLL_INTERVAL, default 100ms.
	WorkerPollInterval time.Duration

	// HTTPAddr serves /healthz, /readyz, /metrics and /dashboard.
	// HTTP_ADDR, default :8080.
	HTTPAddr string
	// DashboardReadOnly keeps asynqmon from changing tasks.
	// DASHBOARD_READONLY, default true.
	DashboardReadOnly bool
	// DashboardUser and DashboardPassword are the dashboard's Basic auth
	// login; without both the dashboard is off. DASHBOARD_USER and
	// DASHBOARD_PASSWORD, default none.
	DashboardUser     string
	DashboardPassword string

	// LogLevel is debug, info, warn or error. LOG_LEVEL, default info.
	LogLevel string
	// LogFormat is json or console. LOG_FORMAT, default json.
	LogFormat string

	// CredstoreKeys is the raw `kid:base64key,…` list; credstore parses
	// it and the first key seals. CREDSTORE_KEYS, default none.
	CredstoreKeys string

	// AtlassianClientID and AtlassianClientSecret are the OAuth app's
	// credentials. ATLASSIAN_CLIENT_ID and ATLASSIAN_CLIENT_SECRET,
	// default none.
	AtlassianClientID     string
	AtlassianClientSecret string
	// AtlassianAuthURL is the OAuth host (/authorize, /oauth/token).
	// ATLASSIAN_AUTH_URL, default https://auth.atlassian.com.
	AtlassianAuthURL string
	// AtlassianAPIURL is the API gateway host. ATLASSIAN_API_URL, default
	// https://api.atlassian.com.
	AtlassianAPIURL string
	// AtlassianPointsPerHour is the app's hourly Cloud points quota, spent
	// fleet-wide (0: no budget). ATLASSIAN_POINTS_PER_HOUR, default 65000.
	AtlassianPointsPerHour int

	// EgressProxyURL sends Confluence traffic through a proxy (http,
	// https, socks5). EGRESS_PROXY_URL, default none.
	EgressProxyURL string
	// ConfluenceAllowCIDRs are internal address ranges Confluence may be
	// reached at (a bare IP is a /32 or /128). CONFLUENCE_ALLOW_CIDRS,
	// default none.
	ConfluenceAllowCIDRs []*net.IPNet
	// ConfluenceTimeout bounds one request. CONFLUENCE_TIMEOUT, default 30s.
	ConfluenceTimeout time.Duration
	// ConfluenceRate and ConfluenceBurst are the per-instance fleet-wide
	// request rate (per second) and burst; 0 switches the rate off.
	// CONFLUENCE_RATE and CONFLUENCE_BURST, defaults 20 and 40.
	ConfluenceRate  int
	ConfluenceBurst int
	// ConfluenceMaxInflight caps one instance's concurrent requests,
	// fleet-wide (0: no cap). CONFLUENCE_MAX_INFLIGHT, default 10.
	ConfluenceMaxInflight int
	// IntegrationMaxActive caps one integration's running tasks,
	// fleet-wide (0: no cap). INTEGRATION_MAX_ACTIVE, default 5.
	IntegrationMaxActive int
	// BreakerFailures consecutive failures open an instance's breaker for
	// BreakerOpen. BREAKER_FAILURES and BREAKER_OPEN, defaults 5 and 30s.
	BreakerFailures int
	BreakerOpen     time.Duration

	// AttachmentMaxBytes caps one attachment. ATTACHMENT_MAX_BYTES,
	// default 100 MiB.
	AttachmentMaxBytes int64
	// AttachmentURLHosts are the hosts url attachments may come from
	// (exact names or *.suffix). ATTACHMENT_URL_HOSTS, default none.
	AttachmentURLHosts []string

	Outcomes // DESIGN §10: outcome stream, webhooks, HTTP API (outcomes.go)
}

// Error names the variable and the value that was refused.
type Error struct {
	Var    string
	Value  string
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("config: %s=%q: %s", e.Var, e.Value, e.Reason)
}

// secretVars are never echoed back in an error.
var secretVars = map[string]bool{
	"CREDSTORE_KEYS": true, "ATLASSIAN_CLIENT_SECRET": true, "DASHBOARD_PASSWORD": true,
	"OUTCOME_WEBHOOK_SECRET": true, "API_TOKENS": true,
}

type loader struct {
	getenv func(string) string
	errs   []error
}

func (l *loader) fail(name, value, reason string) {
	if secretVars[name] {
		value = "[REDACTED]"
	}
	l.errs = append(l.errs, &Error{Var: name, Value: value, Reason: reason})
}

func (l *loader) str(name, def string) string {
	if v := strings.TrimSpace(l.getenv(name)); v != "" {
		return v
	}
	return def
}

func (l *loader) int(name string, def, min int) int {
	raw := l.str(name, "")
	if raw == "" {
		return def
	}
	n, err := strconv.Atoi(raw)
	if err != nil {
		l.fail(name, raw, "not an integer")
		return def
	}
	if n < min {
		l.fail(name, raw, fmt.Sprintf("must be at least %d", min))
		return def
	}
	return n
}

func (l *loader) duration(name string, def, min time.Duration) time.Duration {
	raw := l.str(name, "")
	if raw == "" {
		return def
	}
	d, err := time.ParseDuration(raw)
	if err != nil {
		l.fail(name, raw, "not a duration (examples: 30s, 1m, 100ms)")
		return def
	}
	if d < min {
		l.fail(name, raw, fmt.Sprintf("must be at least %s", min))
		return def
	}
	return d
}

func (l *loader) bool(name string, def bool) bool {
	raw := l.str(name, "")
	if raw == "" {
		return def
	}
	b, err := strconv.ParseBool(raw)
	if err != nil {
		l.fail(name, raw, "not a boolean (true or false)")
		return def
	}
	return b
}

func (l *loader) httpURL(name, def string, schemes ...string) string {
	raw := l.str(name, def)
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		l.fail(name, raw, "not an absolute URL")
		return def
	}
	for _, s := range schemes {
		if u.Scheme == s {
			return strings.TrimRight(raw, "/")
		}
	}
	l.fail(name, raw, "scheme must be one of "+strings.Join(schemes, ", "))
	return def
}

func (l *loader) list(name string) []string {
	var out []string
	for _, part := range strings.Split(l.str(name, ""), ",") {
		if p := strings.TrimSpace(part); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Load reads the configuration through getenv (os.Getenv in production).
// Every bad value is reported, each naming its variable.
func Load(getenv func(string) string) (*Config, error) {
	l := &loader{getenv: getenv}
	c := &Config{
		RedisURL:               l.str("REDIS_URL", "redis://127.0.0.1:6379/0"),
		RedisSentinelAddrs:     l.list("REDIS_SENTINEL_ADDRS"),
		RedisSentinelMaster:    l.str("REDIS_SENTINEL_MASTER", ""),
		RedisClusterAddrs:      l.list("REDIS_CLUSTER_ADDRS"),
		WorkerConcurrency:      l.int("WORKER_CONCURRENCY", 20, 1),
		WorkerShutdownTimeout:  l.duration("WORKER_SHUTDOWN_TIMEOUT", 30*time.Second, time.Second),
		WorkerPollInterval:     l.duration("WORKER_POLL_INTERVAL", 100*time.Millisecond, 10*time.Millisecond),
		HTTPAddr:               l.str("HTTP_ADDR", ":8080"),
		DashboardReadOnly:      l.bool("DASHBOARD_READONLY", true),
		DashboardUser:          l.str("DASHBOARD_USER", ""),
		DashboardPassword:      l.str("DASHBOARD_PASSWORD", ""),
		LogLevel:               l.str("LOG_LEVEL", "info"),
		LogFormat:              l.str("LOG_FORMAT", "json"),
		CredstoreKeys:          l.str("CREDSTORE_KEYS", ""),
		AtlassianClientID:      l.str("ATLASSIAN_CLIENT_ID", ""),
		AtlassianClientSecret:  l.str("ATLASSIAN_CLIENT_SECRET", ""),
		AtlassianAuthURL:       l.httpURL("ATLASSIAN_AUTH_URL", "https://auth.atlassian.com", "https", "http"),
		AtlassianAPIURL:        l.httpURL("ATLASSIAN_API_URL", "https://api.atlassian.com", "https", "http"),
		AtlassianPointsPerHour: l.int("ATLASSIAN_POINTS_PER_HOUR", 65000, 0),
		EgressProxyURL:         l.httpURL("EGRESS_PROXY_URL", "", "http", "https", "socks5"),
		ConfluenceTimeout:      l.duration("CONFLUENCE_TIMEOUT", 30*time.Second, 100*time.Millisecond),
		ConfluenceRate:         l.int("CONFLUENCE_RATE", 20, 0),
		ConfluenceBurst:        l.int("CONFLUENCE_BURST", 40, 0),
		ConfluenceMaxInflight:  l.int("CONFLUENCE_MAX_INFLIGHT", 10, 0),
		IntegrationMaxActive:   l.int("INTEGRATION_MAX_ACTIVE", 5, 0),
		BreakerFailures:        l.int("BREAKER_FAILURES", 5, 1),
		BreakerOpen:            l.duration("BREAKER_OPEN", 30*time.Second, time.Second),
		AttachmentMaxBytes:     int64(l.int("ATTACHMENT_MAX_BYTES", 100<<20, 1)),
		AttachmentURLHosts:     l.list("ATTACHMENT_URL_HOSTS"),
	}
	c.WorkerQueues = l.queues("WORKER_QUEUES", "critical=6,default=3,low=1")
	c.ConfluenceAllowCIDRs = l.cidrs("CONFLUENCE_ALLOW_CIDRS")
	l.redis(c)
	l.check(c)
	l.outcomes(c)
	if len(l.errs) > 0 {
		return nil, errors.Join(l.errs...)
	}
	return c, nil
}

func (l *loader) queues(name, def string) map[string]int {
	raw := l.str(name, def)
	out := map[string]int{}
	for _, part := range strings.Split(raw, ",") {
		q, w, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(w)
		if !ok || q == "" || err != nil || n < 1 {
			l.fail(name, raw, "want name=weight pairs such as critical=6,default=3,low=1 (weights ≥ 1)")
			return map[string]int{"critical": 6, "default": 3, "low": 1}
		}
		out[q] = n
	}
	return out
}

func (l *loader) cidrs(name string) []*net.IPNet {
	var out []*net.IPNet
	for _, raw := range l.list(name) {
		if !strings.Contains(raw, "/") {
			if ip := net.ParseIP(raw); ip != nil && ip.To4() != nil {
				raw += "/32"
			} else {
				raw += "/128"
			}
		}
		_, n, err := net.ParseCIDR(raw)
		if err != nil {
			l.fail(name, raw, "not a CIDR (example: 10.0.0.0/8)")
			continue
		}
		out = append(out, n)
	}
	return out
}

func (l *loader) redis(c *Config) {
	l.hostPorts("REDIS_SENTINEL_ADDRS", c.RedisSentinelAddrs)
	l.hostPorts("REDIS_CLUSTER_ADDRS", c.RedisClusterAddrs)
	if len(c.RedisClusterAddrs) > 0 {
		if len(c.RedisSentinelAddrs) > 0 || c.RedisSentinelMaster != "" {
			l.fail("REDIS_CLUSTER_ADDRS", strings.Join(c.RedisClusterAddrs, ","), "REDIS_CLUSTER_ADDRS and REDIS_SENTINEL_ADDRS/REDIS_SENTINEL_MASTER exclude each other: set one topology")
		}
		if u, err := url.Parse(c.RedisURL); err == nil && u.Path != "" && u.Path != "/" && u.Path != "/0" {
			l.fail("REDIS_URL", redactURL(c.RedisURL), "a Redis Cluster has only database 0; with REDIS_CLUSTER_ADDRS, REDIS_URL carries only the credentials")
		}
	}
	if len(c.RedisSentinelAddrs) > 0 || c.RedisSentinelMaster != "" {
		if len(c.RedisSentinelAddrs) == 0 || c.RedisSentinelMaster == "" {
			l.fail("REDIS_SENTINEL_MASTER", c.RedisSentinelMaster, "REDIS_SENTINEL_ADDRS and REDIS_SENTINEL_MASTER go together")
		}
		return
	}
	u, err := url.Parse(c.RedisURL)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		l.fail("REDIS_URL", redactURL(c.RedisURL), "want redis://[user:password@]host:port/db or rediss://…")
	}
}

// hostPorts refuses an address list entry that is not host:port.
func (l *loader) hostPorts(name string, addrs []string) {
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			l.fail(name, a, "want host:port entries separated by commas, e.g. redis-0:6379,redis-1:6379")
		}
	}
}

func (l *loader) check(c *Config) {
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		l.fail("LOG_LEVEL", c.LogLevel, "want debug, info, warn or error")
	}
	switch c.LogFormat {
	case "json", "console":
	default:
		l.fail("LOG_FORMAT", c.LogFormat, "want json or console")
	}
	if (c.DashboardUser == "") != (c.DashboardPassword == "") {
		l.fail("DASHBOARD_USER", c.DashboardUser, "DASHBOARD_USER and DASHBOARD_PASSWORD go together")
	}
	if c.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			l.fail("HTTP_ADDR", c.HTTPAddr, "want host:port, e.g. :8080")
		}
	}
}

// redactURL hides a password in a URL so it can be shown in an error.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
