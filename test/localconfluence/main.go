// Command localconfluence runs the fake Confluence (Data Center flavour,
// confluence/confluencetest) on a loopback port, for trying retropub
// without a real Confluence: the README's first publish and
// scripts/first-publish.sh use it. It is test code, not part of the
// worker.
//
//	go run ./test/localconfluence -integration-file local.json
//
// It creates a space, a personal access token and the integration record
// (worker integrations put --file local.json), prints its URL, and prints
// the space's page tree when it gets SIGINT or SIGTERM.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"retropub/confluence/confluencetest"
)

func main() {
	space := flag.String("space", "ENG", "the space `KEY` to create")
	id := flag.String("integration", "local-dc", "the integration `ID` of the record")
	file := flag.String("integration-file", "", "write the integration record to `F` (for worker integrations put --file F)")
	flag.Parse()

	dc := confluencetest.NewDataCenter(confluencetest.DataCenterOptions{})
	baseURL := dc.Start()
	defer dc.Close()
	dc.AddSpace(*space, "Local space "+*space)
	token := randomToken()
	dc.AddPAT("publisher", token)

	record, _ := json.MarshalIndent(map[string]any{
		"id": *id, "flavor": "server", "base_url": baseURL,
		"auth": map[string]string{"kind": "pat", "token": token},
	}, "", "  ")
	if *file != "" {
		// The record holds the token: readable by its owner only.
		if err := os.WriteFile(*file, append(record, '\n'), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, "localconfluence:", err)
			os.Exit(1)
		}
	}
	fmt.Printf("Fake Confluence Data Center at %s (space %s, integration %s)\n", baseURL, *space, *id)
	if *file != "" {
		fmt.Printf("Integration record written to %s\n", *file)
	}
	fmt.Println("Ctrl-C prints the pages and stops.")

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	fmt.Printf("Confluence page tree (%s):\n%s", baseURL, dc.Tree(*space))
}

func randomToken() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
