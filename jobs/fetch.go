package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"retropub/confluence"
)

// Attachments by url (DESIGN §2): the file is streamed from its source into
// the multipart upload, hashed on the way and never held whole in memory.
//
// With sha256 (and size) in the payload, "unchanged" is decided from the
// mapping without downloading, and the upload is verified against them.
// Without sha256 the file is downloaded once to hash it (streamed into the
// hash and discarded) before "unchanged" is decided, and again to upload
// it: an unchanged republish then costs a download but no Confluence call.
//
// Verification happens in the reader the multipart writer copies from: a
// wrong size or hash shows at the end of the file part, before the closing
// boundary is written, so the request body fails, the upload is aborted
// mid-request and Confluence never receives a complete form to store.

// DefaultAttachmentMaxBytes applies when the Publisher is not given a cap.
const DefaultAttachmentMaxBytes = 100 << 20

// DownloadTimeout bounds one download of an attachment source, which runs
// at the pace of the upload it feeds: 100 MiB at 350 KB/s.
const DownloadTimeout = 5 * time.Minute

// NewDownloadClient returns the HTTP client for attachment sources: apart
// from the Confluence client's pool, but under the same egress policy
// (opts: CONFLUENCE_ALLOW_CIDRS, EGRESS_PROXY_URL; the dialer checks every
// address, HTTP_PROXY from the environment is ignored), bounded by timeout
// for the whole download and 30 s for the answer to start. No credentials
// are ever sent with a download (a signed URL carries its own); redirects
// are followed only to ATTACHMENT_URL_HOSTS and never from https to http
// (urlSource.checkRedirect).
func NewDownloadClient(timeout time.Duration, opts ...confluence.HTTPOption) *http.Client {
	opts = append([]confluence.HTTPOption{confluence.HeaderTimeout(30 * time.Second)}, opts...)
	return confluence.NewHTTPClient(timeout, 4, opts...)
}

// HostAllowed reports whether host (no port) matches an ATTACHMENT_URL_HOSTS
// entry: an exact host name, or "*.suffix" for any host below suffix.
func HostAllowed(patterns []string, host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, p := range patterns {
		p = strings.ToLower(strings.TrimSpace(p))
		if suffix, ok := strings.CutPrefix(p, "*."); ok {
			if strings.HasSuffix(host, "."+suffix) {
				return true
			}
		} else if p != "" && host == p {
			return true
		}
	}
	return false
}

// fetcher downloads url attachments under the Publisher's limits.
type fetcher struct {
	client   *http.Client
	hosts    []string
	maxBytes int64
}

func (h *Publisher) fetcher() *fetcher {
	f := &fetcher{client: h.Downloads, hosts: h.AttachmentURLHosts, maxBytes: h.AttachmentMaxBytes}
	if f.client == nil {
		f.client = NewDownloadClient(DownloadTimeout)
	}
	if f.maxBytes <= 0 {
		f.maxBytes = DefaultAttachmentMaxBytes
	}
	return f
}

// attachmentErr is a permanent problem with one attachment.
func attachmentErr(name, format string, args ...any) error {
	return permanent(fmt.Errorf("attachment %s: %s", name, fmt.Sprintf(format, args...)))
}

// localFile is one attachment ready to hash-compare and upload.
type localFile struct {
	att  Attachment
	data []byte // inline content; nil for a url attachment
	size int64  // 0 when unknown (url with sha256 but no size)
	hash string
	src  *urlSource
}

// loadFiles prepares every attachment: inline ones decoded and hashed, url
// ones checked against the limits and, without a declared sha256, hashed by
// a streamed download.
func (r *publishRun) loadFiles(ctx context.Context) ([]localFile, error) {
	f := r.h.fetcher()
	var files []localFile
	for _, a := range r.p.Attachments {
		var lf localFile
		var err error
		if a.URL != "" {
			lf, err = f.load(ctx, a)
		} else {
			lf, err = f.inline(a)
		}
		if err != nil {
			return nil, err
		}
		files = append(files, lf)
	}
	return files, nil
}

func (f *fetcher) inline(a Attachment) (localFile, error) {
	data, err := base64.StdEncoding.DecodeString(a.DataBase64)
	if err != nil {
		return localFile{}, attachmentErr(a.Filename, "data_base64: %v", err)
	}
	if int64(len(data)) > f.maxBytes {
		return localFile{}, attachmentErr(a.Filename, "%d bytes, more than ATTACHMENT_MAX_BYTES (%d)", len(data), f.maxBytes)
	}
	sum := sha256.Sum256(data)
	lf := localFile{att: a, data: data, size: int64(len(data)), hash: hex.EncodeToString(sum[:])}
	if a.SHA256 != "" && !strings.EqualFold(a.SHA256, lf.hash) {
		return localFile{}, attachmentErr(a.Filename, "sha256 %s does not match the data (%s)", a.SHA256, lf.hash)
	}
	if a.Size != 0 && a.Size != lf.size {
		return localFile{}, attachmentErr(a.Filename, "size %d does not match the data (%d bytes)", a.Size, lf.size)
	}
	return lf, nil
}

func (f *fetcher) load(ctx context.Context, a Attachment) (localFile, error) {
	u, err := url.Parse(a.URL)
	if err != nil {
		return localFile{}, attachmentErr(a.Filename, "url: %v", err)
	}
	if !HostAllowed(f.hosts, u.Hostname()) {
		return localFile{}, attachmentErr(a.Filename, "host %q is not in ATTACHMENT_URL_HOSTS", u.Hostname())
	}
	if a.Size > f.maxBytes {
		return localFile{}, attachmentErr(a.Filename, "size %d is more than ATTACHMENT_MAX_BYTES (%d)", a.Size, f.maxBytes)
	}
	src := &urlSource{f: f, ctx: ctx, att: a}
	if a.SHA256 != "" {
		src.wantHash, src.declared = strings.ToLower(a.SHA256), true
		return localFile{att: a, size: a.Size, hash: src.wantHash, src: src}, nil
	}
	// No hash to compare with the mapping: download once to learn it.
	rc, err := src.fetch()
	if err != nil {
		return localFile{}, err
	}
	_, err = io.Copy(io.Discard, rc)
	rc.Close()
	if err != nil {
		return localFile{}, err
	}
	vr := rc.(*verifyingReader)
	src.wantHash, src.size = vr.sum, vr.n
	return localFile{att: a, size: vr.n, hash: vr.sum, src: src}, nil
}

// upload is the confluence.Upload for the file; Open may be called again
// when the request is repeated, and then reads the source again.
func (lf localFile) upload() confluence.Upload {
	ct := lf.att.ContentType
	if ct == "" {
		ct = mediaType(lf.att) // by extension, as the page renders it
	}
	if ct == "" && lf.src != nil {
		ct = lf.src.servedType()
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	if lf.src == nil {
		return confluence.BytesUpload(lf.att.Filename, ct, hashComment(lf.hash), lf.data)
	}
	return confluence.Upload{Filename: lf.att.Filename, ContentType: ct, Comment: hashComment(lf.hash), Open: lf.src.open}
}

// withUploads runs one Confluence upload request for files. The url
// sources are opened first, so a missing, oversized or mistyped source
// fails the step before Confluence sees anything; whatever the request did
// not read is closed afterwards.
func (r *publishRun) withUploads(files []localFile, call func([]confluence.Upload) error) error {
	uploads := make([]confluence.Upload, len(files))
	for i, f := range files {
		if f.src != nil {
			if err := f.src.preopen(); err != nil {
				closeSources(files[:i])
				return err
			}
		}
		uploads[i] = f.upload()
	}
	defer closeSources(files)
	return call(uploads)
}

func closeSources(files []localFile) {
	for _, f := range files {
		if f.src != nil {
			f.src.closePending()
		}
	}
}

// urlSource is one url attachment's source.
type urlSource struct {
	f        *fetcher
	ctx      context.Context // the task's: Upload.Open takes none
	att      Attachment
	wantHash string
	size     int64 // learnt by the hashing download (declared size is in att)
	declared bool  // wantHash came from the payload

	mu      sync.Mutex
	pending io.ReadCloser // opened by preopen, not yet handed to Open
	served  string        // the media type the source last answered with
}

func (s *urlSource) servedType() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served
}

func (s *urlSource) preopen() error {
	rc, err := s.fetch()
	if err != nil {
		return err
	}
	if old := s.swap(rc); old != nil {
		old.Close()
	}
	return nil
}

func (s *urlSource) open() (io.ReadCloser, error) {
	if rc := s.swap(nil); rc != nil {
		return rc, nil
	}
	return s.fetch()
}

func (s *urlSource) closePending() {
	if rc := s.swap(nil); rc != nil {
		rc.Close()
	}
}

// swap makes rc the pending download and returns the one it replaces.
func (s *urlSource) swap(rc io.ReadCloser) io.ReadCloser {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.pending
	s.pending = rc
	return old
}

// fetch starts a download and checks what the answer says before a byte of
// it is read: status, media type, length.
func (s *urlSource) fetch() (io.ReadCloser, error) {
	name := s.att.Filename
	req, err := http.NewRequestWithContext(s.ctx, http.MethodGet, s.att.URL, nil)
	if err != nil {
		return nil, attachmentErr(name, "url: %v", err)
	}
	req.Header.Set("User-Agent", "retropub")
	client := *s.f.client
	client.CheckRedirect = s.checkRedirect
	resp, err := client.Do(req)
	if err != nil {
		var pe *PermanentError
		if errors.As(err, &pe) {
			return nil, pe
		}
		if errors.Is(err, confluence.ErrEgressRefused) {
			return nil, attachmentErr(name, "download: %v", stripDownloadURL(err))
		}
		// Timeouts and refused connections may pass: retried.
		return nil, fmt.Errorf("attachment %s: download: %w", name, stripDownloadURL(err))
	}
	if err := s.checkAnswer(resp); err != nil {
		resp.Body.Close()
		return nil, err
	}
	want := s.att.Size
	if want == 0 {
		want = s.size
	}
	return &verifyingReader{src: s, body: resp.Body, h: sha256.New(), want: want}, nil
}

func (s *urlSource) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return attachmentErr(s.att.Filename, "more than 5 redirects")
	}
	if !HostAllowed(s.f.hosts, req.URL.Hostname()) {
		return attachmentErr(s.att.Filename, "redirected to host %q, which is not in ATTACHMENT_URL_HOSTS", req.URL.Hostname())
	}
	if via[len(via)-1].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return attachmentErr(s.att.Filename, "redirected from https to %s, which is not followed", req.URL.Scheme)
	}
	return nil
}

func (s *urlSource) checkAnswer(resp *http.Response) error {
	name := s.att.Filename
	switch c := resp.StatusCode; {
	case c == http.StatusOK:
	case c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500:
		return fmt.Errorf("attachment %s: source answered %s", name, resp.Status)
	default:
		return attachmentErr(name, "source answered %s", resp.Status)
	}
	if err := checkMediaType(name, s.att.ContentType, resp.Header.Get("Content-Type")); err != nil {
		return err
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err == nil {
		s.mu.Lock()
		s.served = mt
		s.mu.Unlock()
	}
	switch n := resp.ContentLength; {
	case n > s.f.maxBytes:
		return attachmentErr(name, "source sends %d bytes, more than ATTACHMENT_MAX_BYTES (%d)", n, s.f.maxBytes)
	case n >= 0 && s.att.Size > 0 && n != s.att.Size:
		return attachmentErr(name, "source sends %d bytes, the payload says size %d", n, s.att.Size)
	}
	return nil
}

// checkMediaType refuses a source whose media type differs from the
// declared one (an HTML login page instead of a PNG…). A missing or
// generic application/octet-stream answer is accepted: many file stores
// serve everything that way.
func checkMediaType(name, declared, got string) error {
	if declared == "" || got == "" {
		return nil
	}
	want, _, err1 := mime.ParseMediaType(declared)
	have, _, err2 := mime.ParseMediaType(got)
	if err1 != nil || have == "application/octet-stream" || (err2 == nil && want == have) {
		return nil
	}
	return attachmentErr(name, "source serves %q, the payload says %q", got, declared)
}

// stripDownloadURL keeps the URL out of the error: signed URLs carry
// credentials in their query.
func stripDownloadURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// verifyingReader counts and hashes a download and fails instead of ending
// when the bytes are not what was declared.
type verifyingReader struct {
	src  *urlSource
	body io.ReadCloser
	h    hash.Hash
	n    int64
	want int64  // expected size, 0 when unknown
	sum  string // the hash, set at the end of the file
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.body.Read(p)
	v.n += int64(n)
	v.h.Write(p[:n])
	switch {
	case v.n > v.src.f.maxBytes:
		return 0, attachmentErr(v.src.att.Filename, "more than ATTACHMENT_MAX_BYTES (%d) from the source", v.src.f.maxBytes)
	case v.want > 0 && v.n > v.want:
		return 0, v.mismatch(v.src.att.Size > 0, "the source sends more than %d bytes", v.want)
	case errors.Is(err, io.EOF):
		return n, v.finish()
	case err != nil:
		return n, fmt.Errorf("attachment %s: download: %w", v.src.att.Filename, err)
	}
	return n, nil
}

// finish checks the whole file: io.EOF when it is what was expected.
func (v *verifyingReader) finish() error {
	v.sum = hex.EncodeToString(v.h.Sum(nil))
	if v.want > 0 && v.n != v.want {
		return v.mismatch(v.src.att.Size > 0, "the source sent %d bytes, expected %d", v.n, v.want)
	}
	if want := v.src.wantHash; want != "" && v.sum != want {
		return v.mismatch(v.src.declared, "the source's sha256 is %s, expected %s", v.sum, want)
	}
	return io.EOF
}

// mismatch is permanent against what the payload declared (sha256, size);
// against what an earlier download of this attempt found, the file changed
// meanwhile and a retry starts over.
func (v *verifyingReader) mismatch(declared bool, format string, args ...any) error {
	if declared {
		return attachmentErr(v.src.att.Filename, "%s (as declared in the payload)", fmt.Sprintf(format, args...))
	}
	return fmt.Errorf("attachment %s: the source changed while publishing: %s", v.src.att.Filename, fmt.Sprintf(format, args...))
}

func (v *verifyingReader) Close() error { return v.body.Close() }
