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
)

const integrationsUsage = "usage: worker integrations put --file F|- | list | show ID | delete ID"

// runIntegrations implements `worker integrations put --file F|- | list |
// show ID | delete ID` and returns the exit status: 0 ok, 1 failure (not
// found, Redis), 2 usage or invalid input. Nothing it prints holds a secret:
// output is built from credstore.View, and credstore errors never carry one.
func runIntegrations(ctx context.Context, store *credstore.Store, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
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
	if cmd == "put" {
		fs.StringVar(&file, "file", "", "JSON integration record to store (secrets included); - reads stdin")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	enc := json.NewEncoder(stdout)

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
		if err := store.Put(ctx, rec); err != nil {
			fmt.Fprintf(stderr, "integrations put: %v\n", err)
			return 1
		}
		enc.Encode(map[string]any{"ok": true, "integration": rec.View()})
		return 0

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
