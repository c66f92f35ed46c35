// Package jobs holds retropub's asynq task types, their payloads and handlers.
//
// report:publish (queue default) publishes one revision of a report: payload
// schema 1 (PublishPayload, decoded strictly by DecodePublishPayload), TaskID
// "report:publish:<integration>:<report id>:<revision>" with a 24 h
// Retention as the de-duplication window (NewPublishTask, EnqueuePublish).
// The handler (Publisher) runs named, idempotent steps (stepOrder in
// publish.go); each returns what the next needs, and the report's mapping
// in Redis (mapping.go, written only by mappingStore) is all an attempt
// leaves for the next, so any re-run resumes or changes nothing.
//
// What asynq does with a failure is decided here, once (DESIGN §6):
// classify types the error and gives it one Classification (class, delay,
// counted or not) that IsFailure, RetryDelay, the outcome metrics, the
// deferral cap and the outcome record read. Invalid payloads and other
// permanent failures wrap asynq.SkipRetry (*PermanentError, *ReauthError)
// and are archived with a message a person can act on; rate limits and
// deferrals are not failures and come back after their delay; everything
// else is retried with exponential backoff and full jitter.
package jobs
