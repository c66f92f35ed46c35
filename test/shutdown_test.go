package test

import (
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
)

// Must-show 4: SIGTERM while a publish is in flight. Either the step ends
// within WORKER_SHUTDOWN_TIMEOUT and the task completes, or it does not
// and asynq hands the task back to its queue, where the next worker
// finishes it. Either way: one page, each attachment once, nothing lost.
func TestSIGTERMDuringPublish(t *testing.T) {
	for _, c := range []struct {
		name   string
		finish bool // the held upload is answered before the timeout
	}{{"finishes within the timeout", true}, {"handed back after the timeout", false}} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			hold := e.fake.HoldNext("POST", regexp.MustCompile(`/child/attachment$`))
			w := e.startEnv([]string{"WORKER_SHUTDOWN_TIMEOUT=2s"}, "worker", "")
			res := e.enqueue(retro("sigterm", 1, 3))
			select {
			case <-hold.Arrived:
			case <-time.After(60 * time.Second):
				t.Fatal("attachment upload never started")
			}
			sent := time.Now()
			if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if c.finish {
				// Let shutdown begin, then answer the upload.
				waitForLog(t, w, "shutting down")
				hold.Release(true)
			}
			select {
			case <-w.done:
			case <-time.After(60 * time.Second):
				t.Fatal("worker did not exit after SIGTERM")
			}
			t.Logf("worker exited %v after SIGTERM (exit code %d)", time.Since(sent).Round(10*time.Millisecond), w.cmd.ProcessState.ExitCode())
			if code := w.cmd.ProcessState.ExitCode(); code != 0 {
				t.Fatalf("exit code %d", code)
			}
			info, err := e.insp.GetTaskInfo("default", res.TaskID)
			if err != nil {
				t.Fatal(err)
			}
			if c.finish {
				if info.State != asynq.TaskStateCompleted {
					t.Fatalf("task %s after a drained shutdown, want completed (%s)", info.State, info.LastErr)
				}
			} else {
				if info.State != asynq.TaskStatePending || info.Retried != 0 {
					t.Fatalf("task %s (retried %d), want handed back to pending uncounted", info.State, info.Retried)
				}
				hold.Release(false) // the abandoned upload never happened
				e.start("worker", "")
				if info = e.wait("default", res.TaskID); info.State != asynq.TaskStateCompleted {
					t.Fatalf("task %s after restart: %s", info.State, info.LastErr)
				}
			}
			page := e.onePage("Retro sigterm")
			names := map[string]int{}
			for _, a := range e.fake.Attachments(page.ID) {
				names[a.Title]++
			}
			if len(names) != 3 || names["file-0.png"] != 1 || names["file-1.png"] != 1 || names["file-2.png"] != 1 {
				t.Fatalf("attachments %v", names)
			}
		})
	}
}

func waitForLog(t *testing.T, p *proc, msg string) {
	t.Helper()
	re := regexp.MustCompile(`"msg":"` + regexp.QuoteMeta(msg) + `"`)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if re.MatchString(p.stderr.String()) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %q in the log", msg)
}
