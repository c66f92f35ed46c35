package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"retropub/jobs"
)

func TestZZShow(t *testing.T) {
	h := newHarness(t)
	for _, in := range []string{
		jsonl(eventJSON("e1", "r1", 1), strings.Replace(eventJSON("e2", "r2", 1), `"kind":"retrospective"`, `"kind":"memo","colour":1`, 1)),
		jsonl(eventJSON("e1", "r1", 1)) + `{"schema":1,`,
		jsonl(eventJSON("e1", "r1", 1), eventJSON("e1", "r1", 1)),
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"publish", "--file", "-", "--wait=200ms"}, strings.NewReader(in), &out, &errb, h.getenv)
		fmt.Printf("code=%d\nstdout:\n%sstderr:\n%s\n", code, out.String(), errb.String())
	}
	var out, errb bytes.Buffer
	run(context.Background(), []string{"publish", "-h"}, nil, &out, &errb, h.getenv)
	fmt.Println(errb.String())
	errb.Reset()
	run(context.Background(), nil, nil, &out, &errb, h.getenv)
	fmt.Println(errb.String())
}

func TestZZSpeed(t *testing.T) {
	var sb strings.Builder
	for i := range 100000 {
		sb.WriteString(eventJSON(fmt.Sprintf("e%d", i), fmt.Sprintf("r%d", i), 1))
		sb.WriteByte('\n')
	}
	start := time.Now()
	lw := newLineWriter(io.Discard)
	evs, code := readEvents(&env{stderr: io.Discard}, strings.NewReader(sb.String()), lw)
	fmt.Println("validate 100k:", time.Since(start), len(evs), code)
	h := newHarness(t)
	d, _ := loadAndConnect(context.Background(), &env{getenv: h.getenv, stderr: io.Discard})
	start = time.Now()
	enqueueBatch(context.Background(), d, evs[:5000], evs, jobs.EnqueueOptions{})
	fmt.Println("enqueue 5k miniredis:", time.Since(start))
}
