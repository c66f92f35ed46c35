package confluence

import "context"

// Priority is how urgent the work behind a request is. The caller (jobs)
// decides it per task and puts it in the request's context; a Gate reads
// it to decide how much of a shared budget the request may spend.
type Priority int

const (
	PriorityNormal   Priority = iota // publishing: keeps a reserve for critical work
	PriorityCritical                 // a person is waiting (set-up checks): may spend all
	PriorityLow                      // backfills: stop early, when the budget runs low
)

type priorityKey struct{}

// WithPriority returns ctx carrying p for the requests made under it.
func WithPriority(ctx context.Context, p Priority) context.Context {
	return context.WithValue(ctx, priorityKey{}, p)
}

// PriorityOf returns the priority in ctx; PriorityNormal when none is set.
func PriorityOf(ctx context.Context) Priority {
	p, _ := ctx.Value(priorityKey{}).(Priority)
	return p
}
