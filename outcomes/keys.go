package outcomes

import "retropub/internal/rediskeys"

// Redis keys. A report's and an integration's keys carry the
// integration's hash tag (rediskeys), so each script touches one slot:
// on a cluster the scripts write the integration's outbox instead of the
// stream (outbox.go). The stream's name is external (DESIGN §10).
const (
	// StreamKey is the outcome stream.
	StreamKey = rediskeys.Prefix + "outcomes"
	// parkedIntegrationsKey is the set of integrations that have (or had)
	// parked reports, so List needs no SCAN. Fleet-wide, in no script.
	parkedIntegrationsKey = rediskeys.Prefix + "parked:integrations"
)

// ReportStatusKey is a report's latest outcome (a hash); it expires with
// the report's mapping.
func ReportStatusKey(integration, report string) string {
	return rediskeys.ForIntegration("status:report", integration, report)
}

// integrationStatusKey is an integration's health (a hash).
func integrationStatusKey(integration string) string {
	return rediskeys.ForIntegration("status:integration", integration)
}

// parkedKey holds one parked publish: payload, reason, time (a hash).
func parkedKey(integration, report string) string {
	return rediskeys.ForIntegration("parked", integration, report)
}

// parkedIndexKey orders an integration's parked reports by time (a zset).
func parkedIndexKey(integration string) string {
	return rediskeys.ForIntegration("parked:index", integration)
}

// parkedReasonsKey counts an integration's parked reports by reason (a
// hash), for the metric and the integration status.
func parkedReasonsKey(integration string) string {
	return rediskeys.ForIntegration("parked:reasons", integration)
}

// invalidDoneKey marks that an undecodable task's report.invalid event is
// written (its task id is all it has).
// Its tag is the stream's name, so it shares the stream's slot on a
// cluster (the invalid script writes both).
func invalidDoneKey(taskID string) string {
	return rediskeys.Prefix + "outcome:invalid:{" + StreamKey + "}:" + taskID
}
