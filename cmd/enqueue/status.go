package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"

	"retropub/outcomes"
)

// runStatus prints a report's latest outcome (DESIGN §10), the twin of
// GET /v1/reports/{integration}/{report}: one JSON object; exit 1 when
// retropub has recorded nothing for the report.
func runStatus(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("enqueue status", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	integration := fs.String("integration", "", "integration `ID`")
	report := fs.String("report", "", "report `ID`")
	if code, ok := parseFlags(e, fs, "status", "--integration ID --report R", args); !ok {
		return code
	}
	if *integration == "" || *report == "" {
		e.errorf("status: --integration and --report are required")
		return exitInvalid
	}
	d, code := loadAndConnect(ctx, e)
	if d == nil {
		return code
	}
	defer d.Close()
	st, err := (&outcomes.Store{Redis: d.rdb}).ReportStatus(ctx, *integration, *report)
	switch {
	case errors.Is(err, outcomes.ErrNotFound):
		e.errorf("status: no outcome recorded for report %s of integration %s", *report, *integration)
		return exitFailed
	case err != nil:
		e.errorf("status: %v", err)
		return exitRedis
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(st)
	return exitOK
}
