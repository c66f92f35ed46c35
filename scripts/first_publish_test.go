// Package scripts_test runs the repository's scripts as a reader of the
// README would.
package scripts_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"retropub/internal/testproc"
)

// Must-show: following only the README, a fresh clone publishes the
// sample event to a local fake. first-publish.sh is the README's steps.
func TestFirstPublishScript(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and runs Redis, the fake, a worker")
	}
	for _, tool := range []string{"bash", "make", "redis-server", "redis-cli", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "scripts/first-publish.sh")
	cmd.Dir = testproc.RepoRoot(t)
	cmd.Env = append(os.Environ(),
		fmt.Sprintf("REDIS_PORT=%d", testproc.FreePort(t)),
		fmt.Sprintf("HTTP_ADDR=127.0.0.1:%d", testproc.FreePort(t)),
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("first-publish.sh: %v\n%s", err, out)
	}
	for _, want := range []string{
		`"task_id":"report:publish:local-dc:retro-first:1","state":"completed"`,
		`"outcome":"published"`,
		`"url":"http://127.0.0.1:`,             // Data Center answers a relative link; the result is absolute
		`      "Sprint 42 Retrospective" (id `, // under Retrospectives, under the home page
		`] votes.csv text/csv `,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
