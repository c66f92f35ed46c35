package confluence

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// Attachment is a file on a page (v1 content of type attachment).
type Attachment struct {
	ID      string `json:"id"`
	Title   string `json:"title"` // the file name
	Version struct {
		Number int `json:"number"`
	} `json:"version"`
	Metadata struct {
		Comment   string `json:"comment"`
		MediaType string `json:"mediaType"`
	} `json:"metadata"`
	Extensions struct {
		Comment   string `json:"comment"`
		MediaType string `json:"mediaType"`
		FileSize  int64  `json:"fileSize"`
	} `json:"extensions"`
}

// Comment is the attachment's comment, wherever this Confluence put it.
func (a *Attachment) Comment() string {
	if a.Metadata.Comment != "" {
		return a.Metadata.Comment
	}
	return a.Extensions.Comment
}

// Upload is one file to send. Open is called once, when the multipart body
// is written, so large files stream instead of sitting in memory.
type Upload struct {
	Filename    string
	ContentType string
	Comment     string
	Open        func() (io.ReadCloser, error)
}

// BytesUpload wraps in-memory content.
func BytesUpload(name, contentType, comment string, data []byte) Upload {
	return Upload{Filename: name, ContentType: contentType, Comment: comment,
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }}
}

// attachmentPath is v1 on both flavours, under the flavour's v1 root.
func (c *conn) attachmentPath(pageID string) string {
	return c.v1 + "/content/" + url.PathEscape(pageID) + "/child/attachment"
}

// AttachmentByName finds a page's attachment by file name; ErrNotFound
// when the page has none of that name.
func (c *Client) AttachmentByName(ctx context.Context, pageID, filename string) (*Attachment, error) {
	var out struct {
		Results []Attachment `json:"results"`
	}
	q := url.Values{"filename": {filename}, "limit": {"5"}}
	if err := c.do(ctx, request{method: "GET", path: c.attachmentPath(pageID), query: q}, &out); err != nil {
		return nil, err
	}
	for i := range out.Results {
		if a := &out.Results[i]; a.Title == filename {
			if err := checkAnswerID("GET", c.attachmentPath(pageID), "attachment", a.ID); err != nil {
				return nil, err
			}
			return a, nil
		}
	}
	return nil, &NotFoundError{Method: "GET", Path: c.attachmentPath(pageID), What: "attachment " + strconv.Quote(filename)}
}

// AddAttachments uploads new files in one multipart request (several
// "file" parts, one "comment" per file in the same order). Confluence
// refuses the whole request if a name exists already: ErrFileExists.
func (c *Client) AddAttachments(ctx context.Context, pageID string, files []Upload) ([]Attachment, error) {
	return c.upload(ctx, c.attachmentPath(pageID), files)
}

// UpdateAttachment uploads a new version of a known attachment.
func (c *Client) UpdateAttachment(ctx context.Context, pageID, attachmentID string, file Upload) (*Attachment, error) {
	out, err := c.upload(ctx, c.attachmentPath(pageID)+"/"+url.PathEscape(attachmentID)+"/data", []Upload{file})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("confluence: attachment %s: empty answer to new version", attachmentID)
	}
	return &out[0], nil
}

func (c *Client) upload(ctx context.Context, path string, files []Upload) ([]Attachment, error) {
	// The boundary is fixed per call so a repeated send (after a 401
	// refresh) streams the same body again from Open.
	boundary := multipart.NewWriter(io.Discard).Boundary()
	body := func() io.ReadCloser {
		pr, pw := io.Pipe()
		mw := multipart.NewWriter(pw)
		_ = mw.SetBoundary(boundary)
		go func() { pw.CloseWithError(writeMultipart(mw, files)) }()
		return pr
	}
	var raw json.RawMessage
	err := c.do(ctx, request{
		method: "POST", path: path, body: body, streamed: true,
		contentType: "multipart/form-data; boundary=" + boundary,
		// Confluence's XSRF guard for multipart; "nocheck" is deprecated.
		header: http.Header{"X-Atlassian-Token": {"no-check"}},
	}, &raw)
	if err != nil {
		return nil, err
	}
	atts, err := decodeAttachments(raw)
	for _, a := range atts {
		if err == nil {
			err = checkAnswerID("POST", path, "attachment", a.ID)
		}
	}
	return atts, err
}

// copyBuffers saves io.Copy's 32 KiB allocation per file (the largest
// single allocation of a publish in the worker's profile).
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func writeMultipart(mw *multipart.Writer, files []Upload) error {
	for _, f := range files {
		h := make(textproto.MIMEHeader)
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename="%s"`, quoteEscaper.Replace(f.Filename)))
		ct := f.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		h.Set("Content-Type", ct)
		part, err := mw.CreatePart(h)
		if err != nil {
			return err
		}
		rc, err := f.Open()
		if err != nil {
			return &SourceError{Filename: f.Filename, Err: err}
		}
		// Read errors are the source's; write errors mean the request died.
		buf := copyBuffers.Get().(*[]byte)
		_, err = io.CopyBuffer(part, sourceReader{rc, f.Filename}, *buf)
		copyBuffers.Put(buf)
		rc.Close()
		if err != nil {
			return err
		}
	}
	for _, f := range files {
		h := make(textproto.MIMEHeader)
		h.Set("Content-Disposition", `form-data; name="comment"`)
		h.Set("Content-Type", "text/plain; charset=utf-8")
		part, err := mw.CreatePart(h)
		if err != nil {
			return err
		}
		if _, err := io.WriteString(part, f.Comment); err != nil {
			return err
		}
	}
	if err := mw.WriteField("minorEdit", "true"); err != nil {
		return err
	}
	return mw.Close()
}

// sourceReader marks its read errors as the source's.
type sourceReader struct {
	r    io.Reader
	name string
}

func (s sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		err = &SourceError{Filename: s.name, Err: err}
	}
	return n, err
}

var quoteEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\r", "", "\n", "")

// decodeAttachments accepts both answers Confluence gives: {"results":[…]}
// and, from …/data, sometimes a single attachment object.
func decodeAttachments(raw json.RawMessage) ([]Attachment, error) {
	var list struct {
		Results []Attachment `json:"results"`
	}
	if err := json.Unmarshal(raw, &list); err == nil && list.Results != nil {
		return list.Results, nil
	}
	var one Attachment
	if err := json.Unmarshal(raw, &one); err != nil {
		return nil, fmt.Errorf("confluence: unreadable attachment answer: %w", err)
	}
	if one.ID == "" {
		return nil, nil
	}
	return []Attachment{one}, nil
}
