// Package httpapi is retropub's HTTP API (DESIGN §10): enqueue a publish,
// read a report's or an integration's status, list, replay and discard
// parked publishes. Every call needs a bearer token of API_TOKENS; the
// payload is judged by the same code as `enqueue publish`
// (jobs.DecodePublishPayload). openapi.json describes it, and a test
// holds the handlers to it.
package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"retropub/credstore"
	"retropub/jobs"
	"retropub/outcomes"
)

// OpenAPI is the API's description, served at GET /v1/openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// Token is one named bearer token.
type Token struct{ Name, Secret string }

// API serves the endpoints. Its parts are the same the CLI uses.
type API struct {
	Tokens       []Token
	MaxBody      int64 // API_MAX_BODY
	Client       *asynq.Client
	Inspector    *asynq.Inspector
	Status       *outcomes.Store
	Replayer     *jobs.Replayer
	Integrations interface {
		Get(ctx context.Context, id string) (*credstore.Record, error)
	}
	Log *zap.Logger

	hashes [][32]byte
}

type route struct {
	method, pattern string
	handle          func(*API, http.ResponseWriter, *http.Request)
}

// routes is every endpoint; the OpenAPI test walks it.
var routes = []route{
	{"POST", "/v1/publish", (*API).publish},
	{"GET", "/v1/reports/{integration}/{report}", (*API).reportStatus},
	{"GET", "/v1/integrations/{id}", (*API).integrationStatus},
	{"GET", "/v1/parked", (*API).listParked},
	{"POST", "/v1/parked/replay", (*API).replayParked},
	{"DELETE", "/v1/parked/{integration}/{report}", (*API).discardParked},
	{"GET", "/v1/openapi.json", (*API).openapi},
}

// Register mounts every endpoint on mux, each behind the bearer check.
func (a *API) Register(mux *http.ServeMux) {
	a.hashes = make([][32]byte, len(a.Tokens))
	for i, t := range a.Tokens {
		a.hashes[i] = sha256.Sum256([]byte(t.Secret))
	}
	if a.Log == nil {
		a.Log = zap.NewNop()
	}
	for _, r := range routes {
		h := r.handle
		mux.HandleFunc(r.method+" "+r.pattern, func(w http.ResponseWriter, req *http.Request) {
			name, ok := a.authorize(req)
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="retropub"`)
				writeError(w, http.StatusUnauthorized, "missing or wrong bearer token (Authorization: Bearer <token of API_TOKENS>)")
				return
			}
			a.Log.Debug("api call", zap.String("token", name), zap.String("method", req.Method), zap.String("path", req.URL.Path))
			h(a, w, req)
		})
	}
}

// authorize compares the bearer token with every configured one in
// constant time (hashes first, so lengths leak nothing either), and
// returns the matching token's name.
func (a *API) authorize(r *http.Request) (string, bool) {
	const prefix = "Bearer "
	h := r.Header.Get("Authorization")
	if len(h) <= len(prefix) || !equalFold(h[:len(prefix)], prefix) {
		return "", false
	}
	got := sha256.Sum256([]byte(h[len(prefix):]))
	name, found := "", 0
	for i, want := range a.hashes {
		if subtle.ConstantTimeCompare(got[:], want[:]) == 1 {
			name, found = a.Tokens[i].Name, 1
		}
	}
	return name, found == 1
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}

// Field is one invalid field of a payload.
type Field struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// ErrorBody is every error answer.
type ErrorBody struct {
	Error  string  `json:"error"`
	Fields []Field `json:"fields,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, ErrorBody{Error: msg})
}

// readBody reads a JSON body of at most MaxBody bytes; it has answered
// (415, 413, 400) when ok is false.
func (a *API) readBody(w http.ResponseWriter, r *http.Request) (body []byte, ok bool) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return nil, false
	}
	body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, a.MaxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, "request body is larger than API_MAX_BODY ("+humanBytes(a.MaxBody)+")")
		return nil, false
	case err != nil:
		writeError(w, http.StatusBadRequest, "could not read the request body")
		return nil, false
	}
	return body, true
}

// PublishAnswer is POST /v1/publish's answer: what `enqueue publish`
// prints for one event.
type PublishAnswer struct {
	EventID   string `json:"event_id,omitempty"`
	TaskID    string `json:"task_id"`
	State     string `json:"state"`
	Duplicate bool   `json:"duplicate"`
	Error     string `json:"error,omitempty"`
}

func (a *API) publish(w http.ResponseWriter, r *http.Request) {
	body, ok := a.readBody(w, r)
	if !ok {
		return
	}
	p, err := jobs.DecodePublishPayload(body)
	if err != nil {
		eb := ErrorBody{Error: "invalid payload"}
		for _, pe := range jobs.Problems(err) {
			eb.Fields = append(eb.Fields, Field{Path: pe.Field, Message: pe.Problem})
		}
		if len(eb.Fields) == 0 {
			eb.Fields = []Field{{Path: "json", Message: err.Error()}}
		}
		writeJSON(w, http.StatusBadRequest, eb)
		return
	}
	task, err := jobs.NewPublishTaskFromJSON(p, body)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, ErrorBody{Error: "invalid payload", Fields: []Field{{Path: "json", Message: err.Error()}}})
		return
	}
	res, err := jobs.EnqueueIdempotent(r.Context(), a.Client, a.Inspector, task, jobs.PublishQueue, p.TaskID(), jobs.EnqueueOptions{})
	if err != nil {
		a.Log.Warn("api: enqueue", zap.String("task_id", p.TaskID()), zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, "could not enqueue: Redis unavailable; retry (enqueueing is idempotent)")
		return
	}
	ans := PublishAnswer{EventID: p.EventID, TaskID: res.TaskID, State: res.State, Duplicate: res.Duplicate}
	code := http.StatusAccepted
	if res.Duplicate {
		code = http.StatusOK
		if res.State == "archived" {
			// As the CLI: an archived duplicate was not accepted; say why.
			ans.Error = res.LastError
			if ans.Error == "" {
				ans.Error = "archived (no error recorded)"
			}
		}
	}
	writeJSON(w, code, ans)
}

func (a *API) reportStatus(w http.ResponseWriter, r *http.Request) {
	st, err := a.Status.ReportStatus(r.Context(), r.PathValue("integration"), r.PathValue("report"))
	if a.failed(w, err, "report") {
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (a *API) integrationStatus(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	st, err := a.Status.IntegrationStatus(r.Context(), id)
	if errors.Is(err, outcomes.ErrNotFound) && a.Integrations != nil {
		// Known but nothing recorded yet: its record's status alone.
		rec, gerr := a.Integrations.Get(r.Context(), id)
		if gerr == nil {
			st, err = &outcomes.IntegrationStatus{ID: id, NeedsReauth: rec.Status.NeedsReauth, Reason: rec.Status.Reason,
				BlockedSpaces: []string{}, ParkedByReason: map[string]int64{}}, nil
			if !rec.Status.Since.IsZero() {
				since := rec.Status.Since
				st.Since = &since
			}
		}
	}
	if a.failed(w, err, "integration") {
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// ParkedList is GET /v1/parked's answer.
type ParkedList struct {
	Parked []outcomes.Parked `json:"parked"`
	Count  int               `json:"count"`
}

func (a *API) listParked(w http.ResponseWriter, r *http.Request) {
	list, err := a.Status.ListParked(r.Context(), r.URL.Query().Get("integration"))
	if a.failed(w, err, "parked") {
		return
	}
	if list == nil {
		list = []outcomes.Parked{}
	}
	writeJSON(w, http.StatusOK, ParkedList{Parked: list, Count: len(list)})
}

// ReplayRequest is POST /v1/parked/replay's body.
type ReplayRequest struct {
	Integration string `json:"integration,omitempty"`
	All         bool   `json:"all,omitempty"`
}

// ReplayAnswer says how many parked publishes went back to the queue.
type ReplayAnswer struct {
	Replayed int `json:"replayed"`
}

func (a *API) replayParked(w http.ResponseWriter, r *http.Request) {
	body, ok := a.readBody(w, r)
	if !ok {
		return
	}
	var req ReplayRequest
	dec := json.NewDecoder(bytesReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, ErrorBody{Error: "invalid request", Fields: []Field{{Path: "json", Message: err.Error()}}})
		return
	}
	if (req.Integration == "") == !req.All {
		writeJSON(w, http.StatusBadRequest, ErrorBody{Error: "invalid request",
			Fields: []Field{{Path: "integration", Message: `give exactly one of "integration" or "all": true`}}})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Minute)
	defer cancel()
	n, err := a.Replayer.Replay(ctx, req.Integration)
	if err != nil {
		a.Log.Warn("api: replay parked", zap.Error(err))
		writeJSON(w, http.StatusServiceUnavailable, ErrorBody{Error: "replay stopped after " + itoa(n) + " publishes: Redis unavailable; retry (replaying is idempotent)"})
		return
	}
	writeJSON(w, http.StatusOK, ReplayAnswer{Replayed: n})
}

// DiscardAnswer confirms a discarded parked publish.
type DiscardAnswer struct {
	Discarded   bool   `json:"discarded"`
	Integration string `json:"integration"`
	Report      string `json:"report"`
}

func (a *API) discardParked(w http.ResponseWriter, r *http.Request) {
	in, rep := r.PathValue("integration"), r.PathValue("report")
	if a.failed(w, a.Status.Discard(r.Context(), in, rep), "parked report") {
		return
	}
	writeJSON(w, http.StatusOK, DiscardAnswer{Discarded: true, Integration: in, Report: rep})
}

func (a *API) openapi(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(OpenAPI)
}

// failed answers 404 for ErrNotFound and 503 for anything else (Redis).
func (a *API) failed(w http.ResponseWriter, err error, what string) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, outcomes.ErrNotFound), errors.Is(err, credstore.ErrNotFound):
		writeError(w, http.StatusNotFound, what+" not found")
	default:
		a.Log.Warn("api: read", zap.String("what", what), zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, "Redis unavailable; retry")
	}
	return true
}
