package confluencetest

import "time"

// SetQuotaLies makes the hourly quota's headers lie as Atlassian's have
// been seen to (confluence-api.md §8, developer community thread 97828):
// every reset it announces (RateLimit's t, a quota 429's Retry-After) is
// off by resetOff — about 12 minutes in the wild — and, with
// dropPolicyAtZero, RateLimit-Policy and the policy name in RateLimit
// vanish once nothing remains. The quota itself still resets at the top of
// the hour, and every quota answer's Date is the quota's clock.
func (s *Server) SetQuotaLies(resetOff time.Duration, dropPolicyAtZero bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lim.quotaLie, s.lim.quotaNoPol = resetOff, dropPolicyAtZero
}
