package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"retropub/jobs"
	"retropub/outcomes"
)

const parkedUsage = `usage: worker parked list [--integration ID]
       worker parked replay (--integration ID | --all)
       worker parked discard --integration ID --report R`

// runParked implements `worker parked …` (DESIGN §10), the twins of the
// HTTP API's parked endpoints. Exit status: 0 ok, 1 not found or Redis
// failure, 2 usage.
func runParked(ctx context.Context, store *outcomes.Store, replay *jobs.Replayer, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, parkedUsage)
		return 2
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("parked "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, parkedUsage); fs.PrintDefaults() }
	integration := fs.String("integration", "", "integration `ID`")
	report := fs.String("report", "", "report `ID` (discard)")
	all := fs.Bool("all", false, "every integration's parked publishes (replay)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	switch {
	case fs.NArg() > 0:
	case cmd == "list" && *report == "" && !*all:
		list, err := store.ListParked(ctx, *integration)
		if err != nil {
			fmt.Fprintf(stderr, "parked list: %v\n", err)
			return 1
		}
		for _, p := range list {
			_ = enc.Encode(p)
		}
		return 0
	case cmd == "replay" && *report == "" && (*integration == "") == *all:
		n, err := replay.Replay(ctx, *integration)
		if err != nil {
			fmt.Fprintf(stderr, "parked replay: stopped after %d: %v (running it again is safe)\n", n, err)
			return 1
		}
		_ = enc.Encode(map[string]any{"ok": true, "replayed": n})
		return 0
	case cmd == "discard" && *integration != "" && *report != "" && !*all:
		err := store.Discard(ctx, *integration, *report)
		if errors.Is(err, outcomes.ErrNotFound) {
			fmt.Fprintf(stderr, "parked discard: nothing parked for report %s of integration %s\n", *report, *integration)
			return 1
		}
		if err != nil {
			fmt.Fprintf(stderr, "parked discard: %v\n", err)
			return 1
		}
		_ = enc.Encode(map[string]any{"ok": true, "discarded": true, "integration": *integration, "report": *report})
		return 0
	}
	fmt.Fprintln(stderr, parkedUsage)
	return 2
}
