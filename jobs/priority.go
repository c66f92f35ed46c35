package jobs

import (
	"context"

	"github.com/hibiken/asynq"

	"retropub/confluence"
)

// LowQueue is where a producer may put backfills (NewPublishTask with
// asynq.Queue(LowQueue)): their Confluence requests stop first when the
// Cloud points budget runs low.
const LowQueue = "low"

// queuePriority is what the queues mean to Confluence's gate: the set-up
// queue is work a person waits for, the low queue backfills.
func queuePriority(queue string) confluence.Priority {
	switch queue {
	case SetupQueue:
		return confluence.PriorityCritical
	case LowQueue:
		return confluence.PriorityLow
	}
	return confluence.PriorityNormal
}

// withPriority runs h with the priority of the task's queue in its
// context, so every Confluence request the task makes carries it.
func withPriority(h asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		q, _ := asynq.GetQueueName(ctx)
		return h.ProcessTask(confluence.WithPriority(ctx, queuePriority(q)), t)
	})
}
