// Package rediskeys names every Redis key retropub keeps (asynq names its
// own). On Redis Cluster a script or MULTI may touch keys of one hash slot
// only, so every key that a script or transaction shares with another
// carries a hash tag, the part in braces that alone picks the slot:
//
//   - per integration, {<integration id>}: mappings, report and parent
//     locks, space and parent caches, fairness sets, the credential record
//     and its refresh lock; statuses and parked reports belong here too;
//   - per Confluence instance, {<instance>}: the gate's cooldown, breaker,
//     rate and in-flight keys;
//   - the app-wide Cloud points budget and quota pause share the tag
//     {cloud}: a budget script reads both, and nothing else;
//   - fleet-wide keys that no script shares with another key stay
//     untagged and small: the index of integrations, the readiness
//     probe, the layout marker.
//
// A script must never mix a per-instance key with the {cloud} ones: they
// are in different slots.
//
// A key's name is its pre-tag (legacy) name with the braces inserted, so
// Legacy and Tagged convert between the two layouts (worker migrate).
//
// Integration ids and space keys have no ':' or braces (jobs' and
// credstore's id patterns); an instance name or a title may contain
// anything, but it always follows the tag or is the tag's last part, so
// the slot of every key of one integration or instance is the same.
package rediskeys

import "strings"

// Prefix starts every retropub key.
const Prefix = "retropub:"

// Integration scoped: the tag is the integration id.

// ForIntegration is the key "retropub:<kind>:{<integration>}[:<part>…]";
// the named helpers below use it, and a new per-integration key (a status,
// a parked report, an outbox) should too, so it lands in the same slot.
func ForIntegration(kind, integration string, parts ...string) string {
	var b strings.Builder
	b.WriteString(Prefix + kind + ":{" + integration + "}")
	for _, p := range parts {
		b.WriteByte(':')
		b.WriteString(p)
	}
	return b.String()
}

// Mapping is the hash of what retropub remembers about one report's page.
func Mapping(integration, reportID string) string {
	return ForIntegration("map", integration, reportID)
}

// ReportLock serialises the tasks of one report.
func ReportLock(integration, reportID string) string {
	return ForIntegration("lock:report", integration, reportID)
}

// Space caches a space key's id.
func Space(integration, spaceKey string) string {
	return ForIntegration("space", integration, spaceKey)
}

// Parent caches the id of a parent page; title is already lower-cased.
func Parent(integration, spaceID, root, title string) string {
	return ForIntegration("parent", integration, spaceID, root, title)
}

// ParentLock serialises the creation of one parent page.
func ParentLock(integration, spaceID, title string) string {
	return ForIntegration("lock:parent", integration, spaceID, title)
}

// Active is the integration's fairness semaphore (running tasks).
func Active(integration string) string { return ForIntegration("active", integration) }

// Waiting lists the integration's tasks deferred for a fair share.
func Waiting(integration string) string { return ForIntegration("waiting", integration) }

// Record is the integration's credential record.
func Record(integration string) string { return ForIntegration("integration", integration) }

// RefreshLock is held by the one worker refreshing the integration's tokens.
func RefreshLock(integration string) string {
	return ForIntegration("integration", integration, "refresh-lock")
}

// Instance scoped: the tag is the Confluence instance ("cloud:<id>",
// "server:<host><path>").

// Gate is one of the gate's per-instance keys: kind is cooldown, breaker,
// gcra, inflight, or a newer one.
func Gate(instance, kind string) string { return Prefix + "gate:{" + instance + "}:" + kind }

// App-wide Cloud budget, tagged {cloud} (one slot, touched by the budget
// scripts only).
var (
	// CloudPoints is the app's hourly Atlassian points budget.
	CloudPoints = Gate("cloud", "points")
	// CloudPause pauses every Cloud call when the app's quota is spent.
	CloudPause = Gate("cloud", "pause")
)

// Fleet-wide, untagged: never in one script or MULTI with another key.
const (
	// Integrations is the set of every integration id.
	Integrations = Prefix + "integrations"
	// Ready is written by /readyz to prove Redis takes writes.
	Ready = Prefix + "readyz"
	// Layout records that `worker migrate` has finished ("tagged").
	Layout = Prefix + "layout"
)

// Deferrals counts one task's deferrals (a single-key script).
func Deferrals(taskID string) string { return Prefix + "deferrals:" + taskID }

// Legacy returns the pre-tag name of a tagged key: the key without its
// tag's braces. ok is false for a key without a tag. An integration id has
// no braces, so its tag ends at the first '}'; an instance name may have
// some, so a gate key's tag ends at the last '}' (a gate kind has none).
func Legacy(key string) (string, bool) {
	open := strings.IndexByte(key, '{')
	if open < 0 || !strings.HasPrefix(key, Prefix) {
		return "", false
	}
	end := open + strings.IndexByte(key[open:], '}')
	if strings.HasPrefix(key, Prefix+"gate:{") {
		end = strings.LastIndexByte(key, '}')
	}
	if end <= open {
		return "", false
	}
	return key[:open] + key[open+1:end] + key[end+1:], true
}

// integrationKinds are the per-integration kinds of the legacy layout,
// longest first so "lock:report" is not taken for something shorter.
var integrationKinds = []string{"lock:report", "lock:parent", "integration", "waiting", "parent", "active", "space", "map"}

// Tagged returns the tagged name of a key in the legacy layout. ok is
// false for a key that needs no tag (fleet-wide keys, deferrals, asynq's)
// or already has one.
func Tagged(legacy string) (string, bool) {
	rest, ok := strings.CutPrefix(legacy, Prefix)
	if !ok || strings.HasPrefix(rest, "{") {
		return "", false
	}
	for _, kind := range integrationKinds {
		after, ok := strings.CutPrefix(rest, kind+":")
		if !ok || after == "" || after[0] == '{' {
			continue
		}
		id, tail, more := strings.Cut(after, ":")
		if more {
			return ForIntegration(kind, id) + ":" + tail, true
		}
		return ForIntegration(kind, id), true
	}
	if after, ok := strings.CutPrefix(rest, "gate:"); ok && after != "" && after[0] != '{' {
		i := strings.LastIndexByte(after, ':')
		if i <= 0 {
			return "", false
		}
		return Gate(after[:i], after[i+1:]), true
	}
	return "", false
}
