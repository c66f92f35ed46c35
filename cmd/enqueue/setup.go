package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"retropub/jobs"
)

// The set-up subcommands (DESIGN §8): each enqueues one integration:* task
// and prints one line, with the same --wait rules and exit statuses as
// publish.

func runTest(ctx context.Context, e *env, args []string) int {
	p := &jobs.TestPayload{Schema: jobs.PayloadSchema}
	return runSetup(ctx, e, "test", "--integration ID --space KEY [--parent-title T] [--root-page-id N] [--delete]", args, p,
		func(fs *flag.FlagSet) {
			fs.StringVar(&p.IntegrationID, "integration", "", "integration `ID`")
			fs.StringVar(&p.SpaceKey, "space", "", "space `KEY` to publish the test page in")
			fs.StringVar(&p.ParentTitle, "parent-title", "", "parent page `T`itle (default Retrospectives)")
			fs.StringVar(&p.RootPageID, "root-page-id", "", "page `N` the parent is created below when missing")
			fs.BoolVar(&p.Delete, "delete", false, "delete the test page again")
		})
}

func runCheck(ctx context.Context, e *env, args []string) int {
	p := &jobs.CheckPayload{Schema: jobs.PayloadSchema}
	return runSetup(ctx, e, "check", "--integration ID", args, p, func(fs *flag.FlagSet) {
		fs.StringVar(&p.IntegrationID, "integration", "", "integration `ID`")
	})
}

func runSearch(ctx context.Context, e *env, args []string) int {
	p := &jobs.SearchPayload{Schema: jobs.PayloadSchema}
	return runSetup(ctx, e, "search", "--integration ID --space KEY --query TEXT [--limit N]", args, p, func(fs *flag.FlagSet) {
		fs.StringVar(&p.IntegrationID, "integration", "", "integration `ID`")
		fs.StringVar(&p.SpaceKey, "space", "", "space `KEY` to search")
		fs.StringVar(&p.Query, "query", "", "the start of the page `TEXT` to find")
		fs.IntVar(&p.Limit, "limit", 0, fmt.Sprintf("at most `N` pages (default and cap %d)", jobs.MaxSearchHits))
	})
}

// runSetup parses flags into p, validates, enqueues, and (with --wait)
// waits for the task and prints its result.
func runSetup(ctx context.Context, e *env, name, synopsis string, args []string, p jobs.SetupPayload, flags func(*flag.FlagSet)) int {
	fs := flag.NewFlagSet("enqueue "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	flags(fs)
	var wait waitFlag
	fs.Var(&wait, "wait", "wait for the task to finish: --wait (60s) or --wait=DUR; DUR bounds the whole command")
	if code, ok := parseFlags(e, fs, name, synopsis+" [--wait[=DUR]]", args); !ok {
		return code
	}
	out := newLineWriter(e.stdout)
	defer out.flush()
	if err := p.Validate(); err != nil {
		e.errorf("%s: %v", name, flagError(err))
		out.write(&line{State: "invalid", Error: flagError(err)})
		return exitInvalid
	}
	if wait.set {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, wait.d)
		defer cancel()
	}
	d, code := loadAndConnect(ctx, e)
	if code != exitOK {
		return code
	}
	defer d.Close()
	res, err := jobs.EnqueueSetup(ctx, d.client, d.insp, p)
	if err != nil {
		out.write(&line{State: "error", Error: "not enqueued: " + err.Error()})
		return exitRedis
	}
	l := &line{TaskID: res.TaskID, State: res.State}
	if !wait.set {
		out.write(l)
		return exitOK
	}
	t := &waitTarget{queue: res.Queue, id: res.TaskID}
	waitFor(ctx, d.insp, []*waitTarget{t})
	l.State, l.Result, l.Error = t.state, t.result, t.err
	out.write(l)
	if t.state != "completed" {
		return exitFailed
	}
	return exitOK
}

// flagError names the flag rather than the payload field, for people at
// a terminal.
func flagError(err error) string {
	var pe *jobs.PayloadError
	if !errors.As(err, &pe) {
		return err.Error()
	}
	flagName := map[string]string{
		"integration_id": "--integration", "target.space_key": "--space", "target.root_page_id": "--root-page-id",
		"parent_title": "--parent-title", "query": "--query", "limit": "--limit",
	}[pe.Field]
	if flagName == "" {
		return err.Error()
	}
	return flagName + ": " + pe.Problem
}

// parseFlags parses a subcommand's flags; !ok means return code now
// (0 after -h). Positional arguments are refused: `--wait 90s` would
// otherwise leave "90s" behind silently.
func parseFlags(e *env, fs *flag.FlagSet, name, synopsis string, args []string) (code int, ok bool) {
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: enqueue %s %s\n", name, synopsis)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitInvalid, false
	}
	if fs.NArg() > 0 {
		e.errorf("%s: unexpected argument %q (the wait duration is written --wait=DUR)", name, fs.Arg(0))
		return exitInvalid, false
	}
	return exitOK, true
}
