package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/hibiken/asynq"
)

// RerunReauthArchived runs again every publish of integrationID that was
// archived because its login needed re-authorising, so new credentials
// lose no report and nobody re-enqueues anything. It returns how many it
// put back on the queue.
func RerunReauthArchived(ctx context.Context, insp *asynq.Inspector, integrationID string) (int, error) {
	// Collect first: running tasks shrinks the archive under the pager.
	var ids []string
	const size = 100
	for page := 1; ; page++ {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		tasks, err := insp.ListArchivedTasks(PublishQueue, asynq.Page(page), asynq.PageSize(size))
		if errors.Is(err, asynq.ErrQueueNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		for _, t := range tasks {
			if t.Type == TypePublishReport && strings.Contains(t.LastErr, reauthMarker) && payloadIntegration(t.Payload) == integrationID {
				ids = append(ids, t.ID)
			}
		}
		if len(tasks) < size {
			break
		}
	}
	n := 0
	for _, id := range ids {
		err := insp.RunTask(PublishQueue, id)
		if errors.Is(err, asynq.ErrTaskNotFound) {
			continue // deleted or run by someone else meanwhile
		}
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func payloadIntegration(payload []byte) string {
	var p struct {
		IntegrationID string `json:"integration_id"`
	}
	_ = json.Unmarshal(payload, &p)
	return p.IntegrationID
}
