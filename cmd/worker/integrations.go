package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"retropub/credstore"
	"retropub/jobs"
	"retropub/outcomes"
)

const integrationsUsage = `usage: worker integrations put --file F|- | list | show ID | delete ID
       worker integrations oauth-url --redirect-uri U [--scopes "S …"]
       worker integrations oauth-exchange --code C --redirect-uri U --id ID [--site-url URL | --cloud-id ID]`

// integrationsDeps is what the integrations commands use.
type integrationsDeps struct {
	store *credstore.Store
	// replay runs the integration's parked publishes again after new
	// credentials; nil: it does not.
	replay *jobs.Replayer
	// outcomes records integration.ok when new credentials clear
	// needs_reauth; nil: it does not.
	outcomes *outcomes.Recorder
	oauth    credstore.OAuthConfig
}

// runIntegrations implements `worker integrations …` and returns the exit
// status: 0 ok, 1 failure (not found, Redis, token endpoint), 2 usage or
// invalid input. Nothing it prints holds a secret: output is built from
// credstore.View, and credstore errors never carry one.
func runIntegrations(ctx context.Context, d integrationsDeps, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, integrationsUsage)
		return 2
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("integrations "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, integrationsUsage)
		fs.PrintDefaults()
	}
	file := ""
	var ox oauthFlags
	switch cmd {
	case "put":
		fs.StringVar(&file, "file", "", "JSON integration record to store (secrets included); - reads stdin")
	case "oauth-url", "oauth-exchange":
		ox.register(fs, cmd)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	enc := json.NewEncoder(stdout)
	store := d.store

	switch {
	case cmd == "put" && file != "" && fs.NArg() == 0:
		rec, err := readRecord(file, stdin)
		if err != nil {
			// Validate joins one error per field; give each its own line.
			for _, line := range strings.Split(err.Error(), "\n") {
				fmt.Fprintf(stderr, "integrations put: %s\n", line)
			}
			return 2
		}
		return putAndRerun(ctx, d, rec, "put", stdout, stderr)

	case cmd == "oauth-url" && fs.NArg() == 0:
		return oauthURL(d, ox, stdout, stderr)

	case cmd == "oauth-exchange" && fs.NArg() == 0:
		return oauthExchange(ctx, d, ox, stdout, stderr)

	case cmd == "list" && fs.NArg() == 0:
		views, err := store.List(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "integrations list: %v\n", err)
			return 1
		}
		for _, v := range views {
			enc.Encode(v)
		}
		return 0

	case cmd == "show" && fs.NArg() == 1:
		id := fs.Arg(0)
		// Get, not just the public fields: show also proves the record opens
		// with the configured keys.
		rec, err := store.Get(ctx, id)
		if err != nil {
			return storeFailure(stderr, "show", id, err)
		}
		enc.SetIndent("", "  ")
		enc.Encode(rec.View())
		return 0

	case cmd == "delete" && fs.NArg() == 1:
		id := fs.Arg(0)
		if err := store.Delete(ctx, id); err != nil {
			return storeFailure(stderr, "delete", id, err)
		}
		enc.Encode(map[string]any{"ok": true, "deleted": id})
		return 0
	}
	fmt.Fprintln(stderr, integrationsUsage)
	return 2
}

// putAndRerun stores new credentials (which clears needs_reauth) and runs
// again the integration's parked publishes (DESIGN §10).
func putAndRerun(ctx context.Context, d integrationsDeps, rec *credstore.Record, cmd string, stdout, stderr io.Writer) int {
	if err := d.store.Put(ctx, rec); err != nil {
		fmt.Fprintf(stderr, "integrations %s: %v\n", cmd, err)
		return 1
	}
	out := map[string]any{"ok": true, "integration": rec.View()}
	if d.outcomes != nil {
		if err := d.outcomes.IntegrationOK(ctx, rec.ID); err != nil {
			fmt.Fprintf(stderr, "integrations %s: stored, but recording integration.ok failed: %v\n", cmd, err)
			return 1
		}
	}
	if d.replay != nil {
		n, err := d.replay.Replay(ctx, rec.ID)
		if err != nil {
			fmt.Fprintf(stderr, "integrations %s: stored, but replaying parked publishes failed after %d: %v\n", cmd, n, err)
			return 1
		}
		out["replayed_parked"] = n
	}
	json.NewEncoder(stdout).Encode(out)
	return 0
}

// readRecord decodes and validates the record in file, or in stdin for "-".
func readRecord(file string, stdin io.Reader) (*credstore.Record, error) {
	r := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	return credstore.DecodeRecord(r)
}

func storeFailure(stderr io.Writer, cmd, id string, err error) int {
	if errors.Is(err, credstore.ErrNotFound) {
		fmt.Fprintf(stderr, "integration %s not found\n", id)
	} else {
		fmt.Fprintf(stderr, "integrations %s: %v\n", cmd, err)
	}
	return 1
}
