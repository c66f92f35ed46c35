package confluencetest

import (
	"net/http"
	"regexp"
	"sync"
)

// Fault makes matching requests fail. It is checked before the endpoint runs.
type Fault struct {
	Method string         // "" matches any method
	Path   *regexp.Regexp // matched against the path after /ex/confluence/{cloudId}, e.g. ^/wiki/api/v2/pages$; nil matches any
	Status int
	Header http.Header
	Body   string
	Times  int // how many requests fail; 0 = forever
	// AfterEffect applies the real effect and then answers with the fault:
	// a write that went through but whose answer was lost.
	AfterEffect bool
}

func (f *Fault) matches(method, path string) bool {
	return (f.Method == "" || f.Method == method) && (f.Path == nil || f.Path.MatchString(path))
}

func (f *Fault) write(w http.ResponseWriter) {
	for k, vs := range f.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if f.Body != "" && w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	}
	w.WriteHeader(f.Status)
	_, _ = w.Write([]byte(f.Body))
}

// AddFault installs f after the faults already installed; the first match wins.
func (s *Server) AddFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f.Header = f.Header.Clone()
	s.faults = append(s.faults, &f)
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// Hold parks one request before its effect, so a test can act while the
// request is in flight (kill its worker, race a second one, …).
type Hold struct {
	// Arrived is closed when the held request arrives.
	Arrived <-chan struct{}

	method  string
	path    *regexp.Regexp
	arrived chan struct{}
	release chan bool
	once    sync.Once
	claimed bool // guarded by Server.mu
}

// HoldNext holds the next request matching method ("" = any) and path (nil
// = any; matched like Fault.Path) until Release.
func (s *Server) HoldNext(method string, path *regexp.Regexp) *Hold {
	h := &Hold{method: method, path: path, arrived: make(chan struct{}), release: make(chan bool, 1)}
	h.Arrived = h.arrived
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holds = append(s.holds, h)
	return h
}

// Release lets the held request go on. With apply=false it is answered 503
// without its effect. The request waits for Release even if its client has
// gone away, so a test can decide whether the abandoned write happened.
// Release may be called before the request arrives; later calls do nothing.
func (h *Hold) Release(apply bool) {
	h.once.Do(func() { h.release <- apply })
}

// wait blocks until Release and reports whether to apply the effect.
func (h *Hold) wait() bool {
	close(h.arrived)
	return <-h.release
}

// takeFaultAndHold claims the first matching fault (counting down Times)
// and the first unclaimed matching hold. Claimed holds stay listed so that
// Close can release them.
func (s *Server) takeFaultAndHold(method, path string) (*Fault, *Hold) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var fault *Fault
	for i, f := range s.faults {
		if !f.matches(method, path) {
			continue
		}
		c := *f
		fault = &c
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		break
	}
	if fault != nil && !fault.AfterEffect {
		return fault, nil // answered at once: leave the hold for a request that runs
	}
	for _, h := range s.holds {
		if !h.claimed && (h.method == "" || h.method == method) && (h.path == nil || h.path.MatchString(path)) {
			h.claimed = true
			return fault, h
		}
	}
	return fault, nil
}
