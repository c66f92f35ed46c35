package jobs

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/url"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// TypePublishReport is the asynq task type of a report publication (DESIGN §2).
const TypePublishReport = "report:publish"

// PayloadSchema is the only payload schema this worker understands.
const PayloadSchema = 1

// MaxPayloadBytes caps an encoded payload: asynq keeps payloads in Redis,
// so bigger files must come by url, not inline.
const MaxPayloadBytes = 4 << 20

// MaxTitleChars bounds report.title before trimming; the renderer cuts
// page titles to Confluence's 255, this only stops abuse.
const MaxTitleChars = 1000

// Report kinds.
const (
	KindRetrospective = "retrospective"
	KindHealthCheck   = "health_check"
)

// PublishPayload is the report:publish payload, schema 1 (DESIGN §2).
type PublishPayload struct {
	Schema        int          `json:"schema"`
	EventID       string       `json:"event_id,omitempty"`
	IntegrationID string       `json:"integration_id"`
	Report        Report       `json:"report"`
	Target        Target       `json:"target"`
	Attachments   []Attachment `json:"attachments,omitempty"`
}

// Report is the meeting report to publish.
type Report struct {
	ID           string    `json:"id"`
	Revision     int64     `json:"revision"`
	Kind         string    `json:"kind"` // KindRetrospective or KindHealthCheck
	Title        string    `json:"title"`
	Team         string    `json:"team,omitempty"`
	HeldAt       string    `json:"held_at,omitempty"` // RFC 3339
	Facilitator  string    `json:"facilitator,omitempty"`
	Participants []string  `json:"participants,omitempty"`
	Link         string    `json:"link,omitempty"`
	Summary      string    `json:"summary,omitempty"`
	Sections     []Section `json:"sections,omitempty"`
	Actions      []Action  `json:"actions,omitempty"`
	Health       *Health   `json:"health,omitempty"`
}

// Section is one retrospective column ("Went well", …).
type Section struct {
	Name  string `json:"name"`
	Items []Item `json:"items,omitempty"`
}

// Item is one card in a section.
type Item struct {
	Text  string `json:"text"`
	Votes int    `json:"votes,omitempty"`
	Group string `json:"group,omitempty"`
}

// Action is a follow-up agreed in the meeting.
type Action struct {
	Text     string `json:"text"`
	Assignee string `json:"assignee,omitempty"`
	Due      string `json:"due,omitempty"` // YYYY-MM-DD
	Done     bool   `json:"done,omitempty"`
}

// Health holds a health check's scores.
type Health struct {
	Dimensions []Dimension `json:"dimensions"`
}

// Dimension is one scored health-check dimension.
type Dimension struct {
	Name     string   `json:"name"`
	Score    float64  `json:"score"`
	Scale    float64  `json:"scale,omitempty"`
	Previous *float64 `json:"previous,omitempty"`
	Rating   string   `json:"rating,omitempty"`
	Comments []string `json:"comments,omitempty"`
}

// Target says where in Confluence the report goes.
type Target struct {
	SpaceKey    string `json:"space_key"`
	RootPageID  string `json:"root_page_id,omitempty"`
	ParentTitle string `json:"parent_title,omitempty"`
}

// Attachment is a file attached to the report page, inline or by URL.
type Attachment struct {
	Filename    string `json:"filename"`
	ContentType string `json:"content_type,omitempty"`
	URL         string `json:"url,omitempty"`
	SHA256      string `json:"sha256,omitempty"`
	Size        int64  `json:"size,omitempty"`
	DataBase64  string `json:"data_base64,omitempty"`
}

// PayloadError names the offending field and what is wrong with it, so the
// person who produced the event can fix it. Field uses JSON paths such as
// report.sections[0].items[2].text, or "json" for a document-level problem.
type PayloadError struct {
	Field   string
	Problem string
}

func (e *PayloadError) Error() string { return e.Field + ": " + e.Problem }

func perr(field, format string, args ...any) *PayloadError {
	return &PayloadError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// DecodePublishPayload decodes and validates one payload strictly: exactly
// one JSON object, no unknown fields, keys spelled exactly and each once
// (decodeStrict), then Validate. The worker and the
// enqueuer both use it, so what is accepted at enqueue time is what runs.
func DecodePublishPayload(data []byte) (*PublishPayload, error) {
	if len(data) > MaxPayloadBytes {
		return nil, perr("json", "payload is %d bytes, more than the %d MiB limit (send large attachments by url)", len(data), MaxPayloadBytes>>20)
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, perr("json", "empty payload, want one JSON object")
	}
	if trimmed[0] != '{' {
		return nil, perr("json", "want one JSON object, got %s", jsonKind(trimmed[0]))
	}

	var p PublishPayload
	if err := decodeStrict(data, &p); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// probeSchema reports a missing or unsupported schema, or nil when the
// schema is 1 (or unreadable, leaving the decode error to speak).
func probeSchema(data []byte) error {
	var s struct {
		Schema *json.RawMessage `json:"schema"`
	}
	if json.Unmarshal(data, &s) != nil {
		return nil
	}
	if s.Schema == nil || string(*s.Schema) == "null" {
		return perr("schema", "required (this worker understands %d)", PayloadSchema)
	}
	var n int
	if json.Unmarshal(*s.Schema, &n) != nil {
		return nil
	}
	return schemaError(n)
}

func schemaError(n int) error {
	switch n {
	case PayloadSchema:
		return nil
	case 0:
		return perr("schema", "required (this worker understands %d)", PayloadSchema)
	}
	return perr("schema", "unsupported schema %d (this worker understands %d)", n, PayloadSchema)
}

// decodeError turns encoding/json errors into PayloadErrors.
func decodeError(err error, data []byte, t reflect.Type) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return perr("json", "%s (at byte %d)", strings.TrimPrefix(syn.Error(), "json: "), syn.Offset)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "json"
		}
		return perr(field, "must be %s, not %s", describeType(typ.Type), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return perr("json", "unexpected end of input (truncated JSON?)")
	}
	msg := err.Error()
	if msg == "unexpected EOF" {
		return perr("json", "unexpected end of input (truncated JSON?)")
	}
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		if at := unknownFieldPath(data, t); at != "" {
			return perr(at, "unknown field (schema %d does not define it)", PayloadSchema)
		}
		return perr("json", "unknown field %s (schema %d does not define it)", f, PayloadSchema)
	}
	return perr("json", "%s", strings.TrimPrefix(msg, "json: "))
}

// unknownFieldPath finds where the first unknown field is, since
// encoding/json only names the key. It runs on the error path only.
func unknownFieldPath(data []byte, t reflect.Type) string {
	dec := json.NewDecoder(bytes.NewReader(data))
	at, _ := findUnknown(dec, t, "")
	return at
}

// findUnknown walks one JSON value shaped like t and returns the path of
// the first key t does not define ("" when there is none).
func findUnknown(dec *json.Decoder, t reflect.Type, at string) (string, error) {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	switch tok {
	case json.Delim('{'):
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return "", err
			}
			key, _ := k.(string)
			var ft reflect.Type
			if t != nil && t.Kind() == reflect.Struct {
				f, ok := fieldByJSONName(t, key)
				if !ok {
					return joinPath(at, key), nil
				}
				ft = f.Type
			}
			if p, err := findUnknown(dec, ft, joinPath(at, key)); p != "" || err != nil {
				return p, err
			}
		}
		_, err = dec.Token()
	case json.Delim('['):
		var et reflect.Type
		if t != nil && t.Kind() == reflect.Slice {
			et = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if p, err := findUnknown(dec, et, fmt.Sprintf("%s[%d]", at, i)); p != "" || err != nil {
				return p, err
			}
		}
		_, err = dec.Token()
	}
	return "", err
}

// fieldByJSONName matches keys as encoding/json does: exact, then ignoring case.
func fieldByJSONName(t reflect.Type, key string) (reflect.StructField, bool) {
	var fold reflect.StructField
	found := false
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == key {
			return f, true
		}
		if !found && strings.EqualFold(name, key) {
			fold, found = f, true
		}
	}
	return fold, found
}

func joinPath(at, key string) string {
	if at == "" {
		return key
	}
	return at + "." + key
}

func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Pointer:
		return describeType(t.Elem())
	}
	return t.String()
}

func jsonKind(b byte) string {
	switch {
	case b == '[':
		return "an array"
	case b == '"':
		return "a string"
	case b == 't' || b == 'f':
		return "a boolean"
	case b == 'n':
		return "null"
	case b == '-' || (b >= '0' && b <= '9'):
		return "a number"
	}
	return "something that is not JSON"
}

var (
	idRE       = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)
	spaceKeyRE = regexp.MustCompile(`^[A-Za-z0-9_~-]{1,255}$`)
	sha256RE   = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
)

var ratings = map[string]bool{"green": true, "yellow": true, "amber": true, "red": true, "grey": true, "blue": true}

// Validate checks the rules of DESIGN §2 and returns every problem found,
// in document order: a *PayloadError when there is one, PayloadErrors
// when there are more (errors.As finds the first *PayloadError either way).
func (p *PublishPayload) Validate() error {
	if p == nil {
		return perr("json", "no payload")
	}
	var c problems
	c.add(schemaError(p.Schema))
	c.add(checkID("integration_id", p.IntegrationID))
	p.Report.validate(&c)
	p.Target.validate(&c)
	validateAttachments(&c, p.Attachments)
	return c.err()
}

// problems collects a payload's problems, in document order.
type problems []*PayloadError

func (c *problems) add(err error) {
	if err == nil {
		return
	}
	var pe *PayloadError
	if !errors.As(err, &pe) {
		pe = &PayloadError{Field: "json", Problem: err.Error()}
	}
	*c = append(*c, pe)
}

func (c problems) err() error {
	switch len(c) {
	case 0:
		return nil
	case 1:
		return c[0]
	}
	return PayloadErrors(c)
}

// PayloadErrors are every problem of one payload, each naming its field.
type PayloadErrors []*PayloadError

func (es PayloadErrors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// Unwrap lets errors.As find the first *PayloadError.
func (es PayloadErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Problems lists every *PayloadError in err: the one, or all of
// PayloadErrors; nil when err holds none.
func Problems(err error) []*PayloadError {
	var es PayloadErrors
	if errors.As(err, &es) {
		return es
	}
	var pe *PayloadError
	if errors.As(err, &pe) {
		return []*PayloadError{pe}
	}
	return nil
}

func checkID(field, v string) error {
	if v == "" {
		return perr(field, "required")
	}
	if !idRE.MatchString(v) {
		return perr(field, "%s must be 1 to 128 letters, digits, '.', '_' or '-'", quote(v))
	}
	return nil
}

func (r *Report) validate(c *problems) {
	c.add(checkID("report.id", r.ID))
	switch {
	case r.Revision == 0:
		c.add(perr("report.revision", "required (a number ≥ 1 that grows with each change)"))
	case r.Revision < 0:
		c.add(perr("report.revision", "%d must be at least 1", r.Revision))
	case r.Revision > MaxRevision:
		// Revisions are compared in Lua, as doubles: past 2^53 two
		// revisions can compare equal and an older one overwrite a newer.
		c.add(perr("report.revision", "%d is more than %d (2^53−1, the largest whole number every JSON reader keeps exactly)", r.Revision, MaxRevision))
	}
	switch r.Kind {
	case KindRetrospective, KindHealthCheck:
	case "":
		c.add(perr("report.kind", "required (%s or %s)", KindRetrospective, KindHealthCheck))
	default:
		c.add(perr("report.kind", "%s is not one of %s, %s", quote(r.Kind), KindRetrospective, KindHealthCheck))
	}
	if n := utf8.RuneCountInString(r.Title); strings.TrimSpace(r.Title) == "" {
		c.add(perr("report.title", "required (must not be blank)"))
	} else if n > MaxTitleChars {
		c.add(perr("report.title", "%d characters, at most %d allowed", n, MaxTitleChars))
	} else {
		c.add(checkPageTitle("report.title", r.Title, false))
	}
	if r.HeldAt != "" {
		if _, err := time.Parse(time.RFC3339, r.HeldAt); err != nil {
			c.add(perr("report.held_at", "%s is not an RFC 3339 time such as 2026-11-27T15:00:00Z", quote(r.HeldAt)))
		}
	}
	if r.Link != "" {
		c.add(checkHTTPURL("report.link", r.Link))
	}
	switch r.Kind {
	case KindRetrospective:
		if r.Health != nil {
			c.add(perr("report.health", "only health_check reports carry health (kind is retrospective)"))
		}
	case KindHealthCheck:
		if len(r.Sections) > 0 {
			c.add(perr("report.sections", "health_check reports carry no sections (put scores in report.health)"))
		}
		if r.Health == nil {
			c.add(perr("report.health", "required for a health_check report"))
		} else if len(r.Health.Dimensions) == 0 {
			c.add(perr("report.health.dimensions", "a health_check report needs at least one dimension"))
		}
	}
	for i, a := range r.Actions {
		if a.Due == "" {
			continue
		}
		if _, err := time.Parse(time.DateOnly, a.Due); err != nil {
			c.add(perr(fmt.Sprintf("report.actions[%d].due", i), "%s is not a date in the form YYYY-MM-DD", quote(a.Due)))
		}
	}
	if r.Health != nil {
		for i, d := range r.Health.Dimensions {
			d.validate(c, fmt.Sprintf("report.health.dimensions[%d]", i))
		}
	}
}

func (d *Dimension) validate(c *problems, field string) {
	if d.Scale < 0 {
		c.add(perr(field+".scale", "%v must be greater than 0", d.Scale))
	}
	inRange := func(name string, v float64) error {
		if v < 0 {
			return perr(field+"."+name, "%v must not be negative", v)
		}
		if d.Scale > 0 && v > d.Scale {
			return perr(field+"."+name, "%v is above the scale of %v", v, d.Scale)
		}
		return nil
	}
	c.add(inRange("score", d.Score))
	if d.Previous != nil {
		c.add(inRange("previous", *d.Previous))
	}
	if d.Rating != "" && !ratings[d.Rating] {
		c.add(perr(field+".rating", "%s is not one of green, yellow, amber, red, grey, blue", quote(d.Rating)))
	}
}

// check is validate for one target on its own (the set-up tasks).
func (t *Target) check() error {
	var c problems
	t.validate(&c)
	return c.err()
}

func (t *Target) validate(c *problems) {
	if t.SpaceKey == "" {
		c.add(perr("target.space_key", "required"))
	} else if !spaceKeyRE.MatchString(t.SpaceKey) {
		c.add(perr("target.space_key", "%s is not a Confluence space key (letters, digits, '_', '~' or '-')", quote(t.SpaceKey)))
	}
	if t.RootPageID != "" && strings.Trim(t.RootPageID, "0123456789") != "" {
		c.add(perr("target.root_page_id", "%s must be a numeric page id", quote(t.RootPageID)))
	}
	if t.ParentTitle != "" {
		if n := utf8.RuneCountInString(t.ParentTitle); n > MaxTitleChars {
			c.add(perr("target.parent_title", "%d characters, at most %d allowed", n, MaxTitleChars))
		} else {
			c.add(checkPageTitle("target.parent_title", t.ParentTitle, true))
		}
	}
}

func validateAttachments(c *problems, atts []Attachment) {
	seen := make(map[string]int, len(atts))
	for i, a := range atts {
		field := fmt.Sprintf("attachments[%d]", i)
		switch {
		case a.Filename == "":
			c.add(perr(field+".filename", "required"))
		case len(a.Filename) > 255:
			c.add(perr(field+".filename", "%d bytes, at most 255 allowed", len(a.Filename)))
		case strings.ContainsAny(a.Filename, "/\\\x00"):
			c.add(perr(field+".filename", `must not contain / or \ or NUL (a name, not a path)`))
		case a.Filename == "." || a.Filename == "..":
			c.add(perr(field+".filename", "%s is not a file name", quote(a.Filename)))
		case strings.IndexFunc(a.Filename, unicode.IsControl) >= 0 || !utf8.ValidString(a.Filename):
			// The page's ri:filename and the multipart header would drop
			// different characters, and the image would point nowhere.
			c.add(perr(field+".filename", "%s contains control characters or invalid UTF-8", quote(a.Filename)))
		case strings.IndexFunc(a.Filename, isBidiControl) >= 0:
			// "a…\u202egnp.exe" shows as "a…exe.png": a name must read as
			// what it is.
			c.add(perr(field+".filename", "%s contains bidirectional control characters (U+202A–U+202E, U+2066–U+2069, …)", quote(a.Filename)))
		}
		// Confluence matches attachment names case-insensitively, so two
		// that differ only in case would overwrite each other.
		key := strings.ToLower(a.Filename)
		if j, dup := seen[key]; dup && a.Filename != "" {
			c.add(perr(field+".filename", "%s is already used by attachments[%d] (names must be unique, ignoring case)", quote(a.Filename), j))
		} else {
			seen[key] = i
		}
		switch {
		case a.URL == "" && a.DataBase64 == "":
			c.add(perr(field, "needs url or data_base64"))
		case a.URL != "" && a.DataBase64 != "":
			c.add(perr(field, "has both url and data_base64, give exactly one"))
		case a.URL != "":
			c.add(checkHTTPURL(field+".url", a.URL))
		default:
			if _, err := base64.StdEncoding.DecodeString(a.DataBase64); err != nil {
				c.add(perr(field+".data_base64", "not valid standard base64 (%v)", err))
			}
		}
		if a.SHA256 != "" && !sha256RE.MatchString(a.SHA256) {
			c.add(perr(field+".sha256", "must be 64 hexadecimal characters (the SHA-256 of the file)"))
		}
		if a.Size < 0 {
			c.add(perr(field+".size", "%d must not be negative", a.Size))
		}
		if a.ContentType != "" {
			mt, _, err := mime.ParseMediaType(a.ContentType)
			if typ, sub, ok := strings.Cut(mt, "/"); err != nil || !ok || typ == "" || sub == "" {
				c.add(perr(field+".content_type", "%s is not a media type such as application/pdf", quote(a.ContentType)))
			}
		}
	}
}

// quote quotes a value for an error message, cut short so that a huge
// bad value does not flood logs and output.
func quote(v string) string {
	const max = 80
	if len(v) <= max {
		return strconv.Quote(v)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return strconv.Quote(v[:cut]) + "…"
}

func checkHTTPURL(field, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return perr(field, "%s must be an absolute http or https URL", quote(raw))
	}
	return nil
}

// ParentTitle is the title of the page the report goes under.
func (p *PublishPayload) ParentTitle() string {
	if t := strings.TrimSpace(p.Target.ParentTitle); t != "" {
		return t
	}
	if p.Report.Kind == KindHealthCheck {
		return "Health Checks"
	}
	return "Retrospectives"
}

// TaskID is the asynq TaskID, report:publish:<integration>:<report id>:<revision>.
// The ids cannot contain ':', so the id is unambiguous.
func (p *PublishPayload) TaskID() string {
	return TypePublishReport + ":" + p.IntegrationID + ":" + p.Report.ID + ":" + strconv.FormatInt(p.Report.Revision, 10)
}
