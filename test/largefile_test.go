package test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"retropub/jobs"
)

// bigFile is size bytes of a 1 MiB pseudo-random block repeated: the source
// generates it on the fly, so the test never holds it either.
type bigFile struct {
	block []byte
	size  int64
}

func newBigFile(size int64) *bigFile {
	block := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(42, 6))
	for i := range block {
		block[i] = byte(r.Uint32())
	}
	return &bigFile{block: block, size: size}
}

func (f *bigFile) writeTo(w io.Writer) error {
	for left := f.size; left > 0; {
		n := min(left, int64(len(f.block)))
		if _, err := w.Write(f.block[:n]); err != nil {
			return err
		}
		left -= n
	}
	return nil
}

func (f *bigFile) sha256() string {
	h := sha256.New()
	_ = f.writeTo(h)
	return hex.EncodeToString(h.Sum(nil))
}

// vmHWM reads a process's peak resident set size, in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	fh, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// A 200 MiB attachment served by a local HTTP server is published by the
// worker binary (built without -race, as it ships) while its peak RSS grows
// by less than 64 MiB: the file streams from the source to Confluence.
func TestLargeURLAttachmentStreamsInBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 200 MiB through the worker; skipped under -short")
	}
	e := newEnv(t)
	file := newBigFile(200 << 20)
	sum := file.sha256()
	src := newFileSource(t)
	src.mux.HandleFunc("/recording.mp4", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "video/mp4")
		w.Header().Set("Content-Length", strconv.FormatInt(file.size, 10))
		_ = file.writeTo(w)
	})

	bin := filepath.Join(t.TempDir(), "worker")
	if out, err := exec.Command("go", "build", "-o", bin, "retropub/cmd/worker").CombinedOutput(); err != nil {
		t.Fatalf("build worker: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	cmd.Env = e.processEnv("ATTACHMENT_URL_HOSTS=127.0.0.1", "ATTACHMENT_MAX_BYTES="+strconv.Itoa(256<<20), "LOG_LEVEL=info")
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("worker log:\n%s", tail(logs.String(), 4000))
		}
	})

	// Warm up (client pools, TLS-free HTTP, Redis) so the baseline is a
	// worker that has already published.
	published := func(p *jobs.PublishPayload) jobs.PublishResult {
		info := e.wait("default", e.enqueue(p).TaskID)
		if info.State != asynq.TaskStateCompleted {
			t.Fatalf("%s: %s %s", p.Report.ID, info.State, info.LastErr)
		}
		return result(t, info)
	}
	published(retro("big-warm", 1, 1))
	base := vmHWM(t, cmd.Process.Pid)

	p := retro("big-file", 1, 0)
	p.Attachments = []jobs.Attachment{{Filename: "recording.mp4", ContentType: "video/mp4",
		URL: src.srv.URL + "/recording.mp4", SHA256: sum, Size: file.size}}
	r := published(p)
	peak := vmHWM(t, cmd.Process.Pid)
	growth := peak - base
	t.Logf("worker VmHWM %d MiB after warm-up, %d MiB after the 200 MiB upload: grew %.1f MiB", base>>20, peak>>20, float64(growth)/(1<<20))

	atts := e.fake.Attachments(r.PageID)
	if len(atts) != 1 || int64(len(atts[0].Data)) != file.size || atts[0].Comment != "sha256:"+sum {
		t.Fatalf("attachment not stored whole: %d attachments", len(atts))
	}
	if got := sha256.Sum256(atts[0].Data); hex.EncodeToString(got[:]) != sum {
		t.Fatal("stored bytes differ from the source")
	}
	if growth >= 64<<20 {
		t.Fatalf("peak RSS grew by %d MiB, want < 64 MiB", growth>>20)
	}
}
