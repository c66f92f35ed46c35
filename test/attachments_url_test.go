package test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/hibiken/asynq"

	"retropub/jobs"
)

// fileSource is an attachment host: handlers by path, hits counted.
type fileSource struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hits map[string]int
	mux  *http.ServeMux
}

func newFileSource(t *testing.T) *fileSource {
	s := &fileSource{hits: map[string]int{}, mux: http.NewServeMux()}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		s.mu.Unlock()
		s.mux.ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// serve answers path with data as contentType (Content-Length set).
func (s *fileSource) serve(path, contentType string, data []byte) string {
	s.mux.HandleFunc(path, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		_, _ = w.Write(data)
	})
	return s.srv.URL + path
}

func (s *fileSource) hitCount(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

func sha(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func pdfBytes(n int) []byte {
	b := []byte(strings.Repeat("%PDF-1.4 retropub test file\n", n/28+1))
	return b[:n]
}

// With sha256 and size in the payload the file streams to Confluence, its
// hash goes into the comment, and an unchanged republish downloads nothing
// and calls nothing.
func TestURLAttachmentWithDeclaredHash(t *testing.T) {
	e := newEnv(t)
	e.startWorker(2)
	src := newFileSource(t)
	data := pdfBytes(300 << 10)
	p := retro("url-declared", 1, 0)
	p.Attachments = []jobs.Attachment{{Filename: "sprint.pdf", ContentType: "application/pdf",
		URL: src.serve("/sprint.pdf", "application/pdf", data), SHA256: sha(data), Size: int64(len(data))}}
	e.publishTwice(p, src, "/sprint.pdf", data, 1, 1)
}

// publishTwice publishes p, checks that its one url attachment arrived
// whole with its hash as comment after firstHits downloads, then republishes
// it unchanged: no Confluence call, totalHits downloads in all.
func (e *env) publishTwice(p *jobs.PublishPayload, src *fileSource, path string, data []byte, firstHits, totalHits int) {
	e.t.Helper()
	r := result(e.t, e.publish(p))
	atts := e.fake.Attachments(r.PageID)
	if len(atts) != 1 || string(atts[0].Data) != string(data) || atts[0].Comment != "sha256:"+sha(data) || atts[0].MediaType != p.Attachments[0].ContentType {
		e.t.Fatalf("attachments %+v", atts)
	}
	if n := src.hitCount(path); n != firstHits {
		e.t.Fatalf("%d downloads, want %d", n, firstHits)
	}
	e.fake.ResetRequests()
	p.Report.Revision++
	if r := result(e.t, e.publish(p)); r.Outcome != "unchanged" {
		e.t.Fatalf("republish outcome %q", r.Outcome)
	}
	if n := src.hitCount(path); n != totalHits || len(e.fake.Requests()) != 0 {
		e.t.Fatalf("unchanged republish: %d downloads in all (want %d), %d Confluence calls", n, totalHits, len(e.fake.Requests()))
	}
}

// Without sha256 the file is downloaded to hash it before "unchanged" is
// decided: one download more, still no Confluence call when unchanged.
func TestURLAttachmentWithoutHash(t *testing.T) {
	e := newEnv(t)
	e.startWorker(2)
	src := newFileSource(t)
	data := pdfBytes(100 << 10)
	p := retro("url-undeclared", 1, 0)
	p.Attachments = []jobs.Attachment{{Filename: "chart.png", ContentType: "image/png", URL: src.serve("/chart.png", "image/png", data)}}
	e.publishTwice(p, src, "/chart.png", data, 2, 3) // hash, upload; hash
}

// A source answering 503 is retried, not archived.
func TestURLAttachmentSourceOutageRetried(t *testing.T) {
	e := newEnv(t)
	e.startWorker(2)
	src := newFileSource(t)
	data := pdfBytes(1000)
	var mu sync.Mutex
	fails := 1
	src.mux.HandleFunc("/flaky.pdf", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if fails > 0 {
			fails--
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/pdf")
		_, _ = w.Write(data)
	})
	p := retro("url-flaky", 1, 0)
	p.Attachments = []jobs.Attachment{{Filename: "flaky.pdf", ContentType: "application/pdf", URL: src.srv.URL + "/flaky.pdf", SHA256: sha(data)}}
	info := e.publish(p)
	if info.Retried < 1 || len(e.fake.Attachments(result(t, info).PageID)) != 1 {
		t.Fatalf("retried %d, attachments %d", info.Retried, len(e.fake.Attachments(result(t, info).PageID)))
	}
}

// Sources that are not what the payload says are archived with a message
// naming the attachment and the problem; nothing half-uploaded remains and
// no signed URL leaks into the error.
func TestURLAttachmentRefused(t *testing.T) {
	e := newEnv(t)
	e.maxAttachment = 64 << 10
	e.startWorker(4)
	src := newFileSource(t)
	small := pdfBytes(10 << 10)
	big := pdfBytes(100 << 10)
	src.serve("/small.pdf", "application/pdf", small)
	src.serve("/big.pdf", "application/pdf", big)
	src.serve("/login.html", "text/html; charset=utf-8", []byte("<html>please log in</html>"))
	src.mux.HandleFunc("/stream.pdf", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/pdf")
		for range 10 { // chunked, no Content-Length: the cap must hold mid-stream
			_, _ = w.Write(big[:10<<10])
			w.(http.Flusher).Flush()
		}
	})
	src.mux.HandleFunc("/moved.pdf", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, strings.Replace(src.srv.URL, "127.0.0.1", "localhost", 1)+"/small.pdf", http.StatusFound)
	})
	base := src.srv.URL
	cases := []struct {
		name string
		att  jobs.Attachment
		want string
	}{
		{"host not allowed", jobs.Attachment{URL: strings.Replace(base, "127.0.0.1", "localhost", 1) + "/small.pdf"}, `host "localhost" is not in ATTACHMENT_URL_HOSTS`},
		{"redirect to other host", jobs.Attachment{URL: base + "/moved.pdf"}, `redirected to host "localhost"`},
		{"declared size over cap", jobs.Attachment{URL: base + "/big.pdf", Size: int64(len(big))}, "more than ATTACHMENT_MAX_BYTES"},
		{"content length over cap", jobs.Attachment{URL: base + "/big.pdf"}, "more than ATTACHMENT_MAX_BYTES"},
		{"stream over cap", jobs.Attachment{URL: base + "/stream.pdf", SHA256: sha(big)}, "more than ATTACHMENT_MAX_BYTES"},
		{"sha256 mismatch", jobs.Attachment{URL: base + "/small.pdf?sig=SECRETSIG", SHA256: sha(big), Size: int64(len(small))}, "the source's sha256 is " + sha(small)},
		{"size mismatch", jobs.Attachment{URL: base + "/small.pdf", SHA256: sha(small), Size: 999}, "source sends 10240 bytes, the payload says size 999"},
		{"wrong media type", jobs.Attachment{URL: base + "/login.html"}, `source serves "text/html; charset=utf-8", the payload says "application/pdf"`},
		{"missing", jobs.Attachment{URL: base + "/nope.pdf", SHA256: sha(small)}, "source answered 404"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := retro(fmt.Sprintf("url-bad-%d", i), 1, 0)
			tc.att.Filename, tc.att.ContentType = "file.pdf", "application/pdf"
			p.Attachments = []jobs.Attachment{tc.att}
			info := e.wait("default", e.enqueue(p).TaskID)
			if info.State != asynq.TaskStateArchived || info.Retried != 0 {
				t.Fatalf("state %s after %d retries: %s", info.State, info.Retried, info.LastErr)
			}
			if !strings.Contains(info.LastErr, "attachment file.pdf: "+tc.want) && !strings.Contains(info.LastErr, tc.want) {
				t.Fatalf("error %q, want it to say %q", info.LastErr, tc.want)
			}
			t.Logf("archived: %s", info.LastErr)
			if strings.Contains(info.LastErr, "SECRETSIG") {
				t.Fatalf("error leaks the URL: %q", info.LastErr)
			}
			for _, pg := range e.pagesTitled(p.Report.Title) {
				if n := len(e.fake.Attachments(pg.ID)); n != 0 {
					t.Fatalf("%d attachments stored", n)
				}
			}
		})
	}
}
