package jobs

import "github.com/hibiken/asynq"

// Register adds every task handler to mux; cmd/worker and the tests wire
// jobs through it, so both run the same code. Types are registered exactly
// (the mux matches by prefix). Each handler runs with its queue's
// Confluence priority (withPriority).
func Register(mux *asynq.ServeMux, p *Publisher) {
	mux.Handle(TypePublishReport, withPriority(p))
	registerSetup(mux, p)
}
