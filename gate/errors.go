package gate

import (
	"fmt"
	"time"
)

// Refusal says which gate refused a request.
type Refusal int

// The gates, in the order the admit script checks them.
const (
	RefusedCooldown   Refusal = iota + 1 // a 429/503 Retry-After cooldown on the instance
	RefusedBreaker                       // the instance's circuit breaker is open
	RefusedRate                          // the instance's fleet-wide request rate
	RefusedInflight                      // the instance's fleet-wide in-flight cap
	RefusedBudget                        // the Cloud hourly points budget
	RefusedQuotaPause                    // Atlassian said the app's global quota is spent
	RefusedProbes                        // the breaker is half-open and its probes are out
)

var refusalText = map[Refusal]string{
	RefusedCooldown:   "instance is cooling down after a rate limit",
	RefusedBreaker:    "circuit breaker open",
	RefusedRate:       "instance request rate reached",
	RefusedInflight:   "instance in-flight cap reached",
	RefusedBudget:     "hourly points budget reached",
	RefusedQuotaPause: "Atlassian's global points quota is spent until the hour turns",
	RefusedProbes:     "circuit breaker half-open, probes in flight",
}

func (r Refusal) String() string {
	if s, ok := refusalText[r]; ok {
		return s
	}
	return fmt.Sprintf("refusal %d", int(r))
}

// DeferError is a request the gate refused without sending it. The task
// should come back at Until; jobs classifies it as a counted deferral,
// not a failure.
type DeferError struct {
	Instance string
	Why      Refusal
	Until    time.Time
	// Cause is, for an open breaker, the answer that opened it as this
	// process saw it ("" when another worker's failures opened it), so a
	// task that ends here says what Confluence said, not only "open".
	Cause string
}

func (e *DeferError) Error() string {
	why := e.Why.String()
	if e.Cause != "" {
		why += " (opened by: " + e.Cause + ")"
	}
	return fmt.Sprintf("confluence %s: %s; not sent, retry after %s", e.Instance, why,
		e.Until.UTC().Format(time.RFC3339Nano))
}
