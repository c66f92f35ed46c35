// Package jobs holds retropub's asynq task types, their payloads and handlers.
//
// report:publish (queue default) publishes one revision of a report: payload
// schema 1 (PublishPayload, decoded strictly by DecodePublishPayload), TaskID
// "report:publish:<integration>:<report id>:<revision>" with a 24 h
// Retention as the de-duplication window (NewPublishTask, EnqueuePublish).
// The handler (Publisher) runs named, idempotent steps that record their
// outcome in Redis, so any re-run resumes or changes nothing.
//
// What asynq does with a failure is decided here, once (DESIGN §6):
// invalid payloads and other permanent failures wrap asynq.SkipRetry
// (*PermanentError, *ReauthError) and are archived with a message a person
// can act on; rate limits and *DeferredError are not failures (IsFailure)
// and come back after the delay the error carries (RetryDelay); everything
// else is retried with exponential backoff and full jitter.
package jobs
