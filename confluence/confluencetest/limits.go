package confluencetest

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// limits are the fake's rate-limit and connection switches (DESIGN §9):
// dropped connections, a token bucket, the hourly points quota, and the
// count of requests that arrived while a Retry-After the fake announced
// was still running ("early").
type limits struct {
	drops []*Drop

	bucketRate   float64 // tokens per second; 0 = off
	bucketBurst  float64
	bucketTokens float64
	bucketAt     time.Time
	bucket429s   int

	quota        int // points per hour; 0 = off
	quotaNow     func() time.Time
	quotaLie     time.Duration // added to every reset the quota announces (quotalies.go)
	quotaNoPol   bool          // no policy header and name once nothing remains
	quotaHour    time.Time
	quotaUsed    int
	quota429s    int
	announcedAt  time.Time // last response carrying Retry-After
	announcedEnd time.Time
	earlyGrace   time.Duration
	early        []Request

	stormUntil time.Time
	stormAfter time.Duration

	outageUntil  time.Time
	outageStatus int
}

// Outage answers every request with status (no Retry-After) until the
// given time: a dead or overloaded site.
func (s *Server) Outage(until time.Time, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lim.outageUntil, s.lim.outageStatus = until, status
}

func (s *Server) inOutage() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lim.outageStatus, time.Now().Before(s.lim.outageUntil)
}

// Storm answers every request 429 with Retry-After retryAfter until the
// given time: a rate-limit storm on this site.
func (s *Server) Storm(until time.Time, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lim.stormUntil, s.lim.stormAfter = until, retryAfter
}

func (s *Server) storming() (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lim.stormAfter, time.Now().Before(s.lim.stormUntil)
}

// Drop closes the connection of matching requests without an answer.
type Drop struct {
	Method string         // "" = any
	Path   *regexp.Regexp // matched like Fault.Path; nil = any
	// AfterEffect applies the request first: a write that went through
	// whose answer was lost. Otherwise the request has no effect.
	AfterEffect bool
	Times       int // 0 = forever
}

// AddDrop installs d; the first matching drop wins.
func (s *Server) AddDrop(d Drop) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lim.drops = append(s.lim.drops, &d)
}

// takeDrop claims the first matching drop, counting down Times.
func (s *Server) takeDrop(method, path string) *Drop {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, d := range s.lim.drops {
		if (d.Method != "" && d.Method != method) || (d.Path != nil && !d.Path.MatchString(path)) {
			continue
		}
		c := *d
		if d.Times > 0 {
			if d.Times--; d.Times == 0 {
				s.lim.drops = append(s.lim.drops[:i:i], s.lim.drops[i+1:]...)
			}
		}
		return &c
	}
	return nil
}

// hangUp closes the client's connection without writing an answer.
func hangUp(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler) // HTTP/2 or a recorder: abort the stream instead
}

// SetTokenBucket limits the site to rate requests a second with bursts of
// burst, answering 429 with Retry-After when the bucket is empty (the
// Data Center limiter; Cloud's burst limits behave alike). rate 0 = off.
func (s *Server) SetTokenBucket(rate float64, burst int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lim.bucketRate, s.lim.bucketBurst = rate, float64(max(burst, 1))
	s.lim.bucketTokens, s.lim.bucketAt = s.lim.bucketBurst, time.Now()
}

// SetHourlyQuota meters the app's points per UTC hour (confluence-api.md
// §4.1): a write costs 1, a GET 1 plus 1 per object returned; past 80 %
// the answers carry RateLimit (r, t) and X-RateLimit-NearLimit; once
// spent, every request gets 429 with reason confluence-quota-global-based
// until the hour turns. now is the quota's clock (nil: the real one), so a
// test can place the hour's end where it likes. points 0 = off.
func (s *Server) SetHourlyQuota(points int, now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lim.quota, s.lim.quotaNow, s.lim.quotaUsed, s.lim.quotaHour = points, now, 0, time.Time{}
}

// Quota429s counts requests refused because the hourly quota was spent.
func (s *Server) Quota429s() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lim.quota429s
}

// Bucket429s counts requests refused by the token bucket.
func (s *Server) Bucket429s() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lim.bucket429s
}

// QuotaUsed is the points spent in the quota's current hour.
func (s *Server) QuotaUsed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lim.quotaUsed
}

// SetEarlyGrace sets how long after a Retry-After answer a request still
// counts as already on its way, not early (default 100 ms): requests
// admitted before the answer reached any worker are not a fault.
func (s *Server) SetEarlyGrace(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lim.earlyGrace = d
}

// EarlyRequests counts requests that arrived inside a Retry-After window
// the fake had announced.
func (s *Server) EarlyRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lim.early)
}

// Early lists them.
func (s *Server) Early() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.lim.early...)
}

// admitLimits runs before a gateway request is handled: it notes early
// arrivals and applies drops before the effect, the token bucket and the
// quota. It reports whether it answered (or hung up) already.
func (s *Server) admitLimits(w http.ResponseWriter, r *http.Request, rt resolved) bool {
	if !rt.gateway {
		return false
	}
	s.noteEarly(r, rt)
	if d := s.takeDrop(r.Method, rt.apiPath); d != nil {
		if !d.AfterEffect {
			s.record(Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
				Time: s.clock(), Allowed: rt.allowed, Write: rt.write, Route: rt.name})
			hangUp(w)
			return true
		}
		s.dropAfter(w, r, rt)
		return true
	}
	if status, on := s.inOutage(); on {
		s.record(Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Status: status,
			Time: s.clock(), Allowed: rt.allowed, Write: rt.write, Route: rt.name})
		writeGatewayError(w, status, http.StatusText(status))
		return true
	}
	if retry, on := s.storming(); on {
		s.refuse(w, r, rt, http.StatusTooManyRequests, retry, "")
		return true
	}
	if retry, limited := s.takeToken(); limited {
		s.refuse(w, r, rt, http.StatusTooManyRequests, retry, "")
		return true
	}
	if retry, date, spent := s.quotaSpent(); spent {
		w.Header().Set("Date", date) // the quota's clock is the server's
		s.refuse(w, r, rt, http.StatusTooManyRequests, retry, "confluence-quota-global-based")
		return true
	}
	return false
}

func (s *Server) noteEarly(r *http.Request, rt resolved) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	grace := s.lim.earlyGrace
	if grace == 0 {
		grace = 100 * time.Millisecond
	}
	if now.After(s.lim.announcedAt.Add(grace)) && now.Before(s.lim.announcedEnd) {
		s.lim.early = append(s.lim.early, Request{Method: r.Method, Path: r.URL.Path, Time: now, Route: rt.name})
	}
}

// dropAfter applies the request, records it, and hangs up.
func (s *Server) dropAfter(w http.ResponseWriter, r *http.Request, rt resolved) {
	rec := httptest.NewRecorder()
	s.serve(rec, r, rt)
	s.chargeQuota(r, rec)
	s.record(Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Status: 0,
		Time: s.clock(), Allowed: rt.allowed, Write: rt.write, Route: rt.name})
	hangUp(w)
}

func (s *Server) takeToken() (retry time.Duration, limited bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := &s.lim
	if l.bucketRate <= 0 {
		return 0, false
	}
	now := time.Now()
	l.bucketTokens = math.Min(l.bucketBurst, l.bucketTokens+now.Sub(l.bucketAt).Seconds()*l.bucketRate)
	l.bucketAt = now
	if l.bucketTokens >= 1 {
		l.bucketTokens--
		return 0, false
	}
	l.bucket429s++
	return time.Duration((1 - l.bucketTokens) / l.bucketRate * float64(time.Second)), true
}

// rollQuota starts a new hour when the quota clock has passed the old one.
func (l *limits) rollQuota() time.Time {
	now := l.quotaNow()
	if hour := now.UTC().Truncate(time.Hour); !hour.Equal(l.quotaHour) {
		l.quotaHour, l.quotaUsed = hour, 0
	}
	return now
}

func (s *Server) quotaSpent() (retry time.Duration, date string, spent bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := &s.lim
	if l.quota <= 0 {
		return 0, "", false
	}
	now := l.rollQuota()
	if l.quotaUsed < l.quota {
		return 0, "", false
	}
	l.quota429s++
	return l.quotaHour.Add(time.Hour).Sub(now) + l.quotaLie, now.UTC().Format(http.TimeFormat), true
}

// refuse answers a limit's 429 and records the request.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, rt resolved, status int, retry time.Duration, reason string) {
	secs := int(math.Ceil(retry.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	if reason != "" {
		w.Header().Set("RateLimit-Reason", reason)
		w.Header().Set("X-RateLimit-Remaining", "0")
	}
	s.announce(status, w.Header())
	s.record(Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Status: status,
		Time: s.clock(), Allowed: rt.allowed, Write: rt.write, Route: rt.name})
	writeGatewayError(w, status, "Too Many Requests")
}

// finishLimits runs after a gateway request was handled: it charges the
// quota, adds its headers, and remembers any Retry-After announced.
func (s *Server) finishLimits(r *http.Request, rt resolved, rec *httptest.ResponseRecorder) {
	if !rt.gateway {
		return
	}
	s.chargeQuota(r, rec)
	s.announce(rec.Code, rec.Header())
}

func (s *Server) announce(status int, h http.Header) {
	if status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable {
		return
	}
	secs, err := strconv.ParseFloat(h.Get("Retry-After"), 64)
	if err != nil || secs <= 0 {
		return
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lim.announcedAt = now
	if end := now.Add(time.Duration(secs * float64(time.Second))); end.After(s.lim.announcedEnd) {
		s.lim.announcedEnd = end
	}
}

func (s *Server) chargeQuota(r *http.Request, rec *httptest.ResponseRecorder) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := &s.lim
	if l.quota <= 0 {
		return
	}
	now := l.rollQuota()
	cost := 1
	if r.Method == http.MethodGet {
		cost += objectsIn(rec.Body.Bytes())
	}
	l.quotaUsed += cost
	h := rec.Header()
	h.Set("Date", now.UTC().Format(http.TimeFormat)) // the quota's clock is the server's
	left := l.quota - l.quotaUsed
	policy := `"global-app-quota";`
	if l.quotaNoPol && left <= 0 {
		policy = "" // seen in the wild: the policy vanishes at r=0
	} else {
		h.Set("RateLimit-Policy", fmt.Sprintf(`"global-app-quota";q=%d;w=3600`, l.quota))
	}
	if left < l.quota/5 {
		reset := int(math.Ceil((l.quotaHour.Add(time.Hour).Sub(now) + l.quotaLie).Seconds()))
		h.Set("RateLimit", fmt.Sprintf(`%sr=%d;t=%d`, policy, max(left, 0), reset))
		h.Set("X-RateLimit-NearLimit", "true")
	}
}

// objectsIn counts the objects a GET returned: a list's results, else one.
func objectsIn(body []byte) int {
	var v struct {
		Results []json.RawMessage `json:"results"`
		ID      any               `json:"id"`
	}
	if json.Unmarshal(body, &v) != nil {
		return 0
	}
	if v.Results != nil {
		return len(v.Results)
	}
	if v.ID != nil {
		return 1
	}
	return 0
}

// Router serves several fake sites behind one gateway URL, picking the
// site by the cloudId in /ex/confluence/{cloudId}/…, as api.atlassian.com
// does for the many customers of one app.
func Router(sites ...*Server) http.Handler {
	byID := map[string]*Server{}
	for _, s := range sites {
		byID[s.cloudID] = s
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, gatewayPrefix), "/")
		if s, ok := byID[id]; ok && strings.HasPrefix(r.URL.Path, gatewayPrefix) {
			s.ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
	})
}
