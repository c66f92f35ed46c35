package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"retropub/confluence"
	"retropub/internal/randhex"
)

// The set-up tasks of DESIGN §2: the meeting service's set-up screens
// enqueue one, then poll its result (ResultWriter, kept for SetupRetention).

// Set-up task types.
const (
	TypeIntegrationTest   = "integration:test"
	TypeIntegrationCheck  = "integration:check"
	TypeIntegrationSearch = "integration:search"
)

// Set-up task options. A person is waiting on the answer, so the tasks go
// to the critical queue, retry little, and give up early: an answer after
// SetupDeadline helps nobody, and a task never stays active past it.
const (
	SetupQueue     = "critical"
	SetupRetention = time.Hour
	SetupMaxRetry  = 2
	// SetupTimeout is per attempt (whole seconds): a test page costs up to
	// five calls (space, parent exact and folded, create, delete).
	SetupTimeout  = 3 * time.Minute
	SetupDeadline = 10 * time.Minute
)

// Limits on what the set-up tasks return.
const (
	MaxSpaces       = 500
	MaxSearchHits   = 50
	maxQueryChars   = 200
	testPageBody    = "<p>This page was created by retropub to test the connection to Confluence. It is safe to delete.</p>"
	testTitlePrefix = "retropub connection test "
)

// SetupCalls are the client calls only the set-up tasks make.
type SetupCalls interface {
	CurrentUser(ctx context.Context) (*confluence.User, error)
	ListSpaces(ctx context.Context, max int) ([]confluence.Space, bool, error)
	SearchPages(ctx context.Context, spaceKey, query string, limit int) ([]confluence.PageHit, error)
	DeletePage(ctx context.Context, id string) error
}

// SetupPayload is one of TestPayload, CheckPayload, SearchPayload.
type SetupPayload interface {
	TaskType() string
	Validate() error
	integration() string
}

// TestPayload is integration:test's payload (schema 1): publish a test
// page where reports would go, and optionally delete it again.
type TestPayload struct {
	Schema        int    `json:"schema"`
	IntegrationID string `json:"integration_id"`
	SpaceKey      string `json:"space_key"`
	ParentTitle   string `json:"parent_title,omitempty"` // default "Retrospectives"
	RootPageID    string `json:"root_page_id,omitempty"`
	Delete        bool   `json:"delete,omitempty"`
}

// CheckPayload is integration:check's payload (schema 1).
type CheckPayload struct {
	Schema        int    `json:"schema"`
	IntegrationID string `json:"integration_id"`
}

// SearchPayload is integration:search's payload (schema 1): pages in a
// space whose title contains Query, for the parent-page picker.
type SearchPayload struct {
	Schema        int    `json:"schema"`
	IntegrationID string `json:"integration_id"`
	SpaceKey      string `json:"space_key"`
	Query         string `json:"query"`
	Limit         int    `json:"limit,omitempty"` // default and cap MaxSearchHits
}

func (*TestPayload) TaskType() string   { return TypeIntegrationTest }
func (*CheckPayload) TaskType() string  { return TypeIntegrationCheck }
func (*SearchPayload) TaskType() string { return TypeIntegrationSearch }

func (p *TestPayload) integration() string   { return p.IntegrationID }
func (p *CheckPayload) integration() string  { return p.IntegrationID }
func (p *SearchPayload) integration() string { return p.IntegrationID }

// Validate checks a TestPayload.
func (p *TestPayload) Validate() error {
	if err := checkHead(p.Schema, p.IntegrationID); err != nil {
		return err
	}
	t := Target{SpaceKey: p.SpaceKey, RootPageID: p.RootPageID, ParentTitle: p.ParentTitle}
	if err := t.check(); err != nil {
		return err
	}
	if utf8.RuneCountInString(p.ParentTitle) > 255 {
		return perr("parent_title", "at most 255 characters")
	}
	return nil
}

// Validate checks a CheckPayload.
func (p *CheckPayload) Validate() error { return checkHead(p.Schema, p.IntegrationID) }

// Validate checks a SearchPayload.
func (p *SearchPayload) Validate() error {
	if err := checkHead(p.Schema, p.IntegrationID); err != nil {
		return err
	}
	if err := (&Target{SpaceKey: p.SpaceKey}).check(); err != nil {
		return err
	}
	switch n := utf8.RuneCountInString(p.Query); {
	case strings.TrimSpace(p.Query) == "":
		return perr("query", "required (the start of a page title)")
	case n > maxQueryChars:
		return perr("query", "%d characters, at most %d allowed", n, maxQueryChars)
	}
	if p.Limit < 0 || p.Limit > MaxSearchHits {
		return perr("limit", "%d is not between 1 and %d (0 means %d)", p.Limit, MaxSearchHits, MaxSearchHits)
	}
	return nil
}

func checkHead(schema int, integration string) error {
	if err := schemaError(schema); err != nil {
		return err
	}
	return checkID("integration_id", integration)
}

// DecodeSetupPayload decodes data strictly (decodeStrict: one JSON object,
// no unknown fields, keys spelled exactly and each once) into p and validates it, as DecodePublishPayload does.
func DecodeSetupPayload(data []byte, p SetupPayload) error {
	if len(data) > 64<<10 {
		return perr("json", "payload is %d bytes; set-up payloads are small", len(data))
	}
	if err := decodeStrict(data, p); err != nil {
		return err
	}
	return p.Validate()
}

// NewSetupTask validates p and builds its task under a fresh TaskID
// (every request from the set-up screen is a new question): the critical
// queue, retention, few retries, timeout and deadline. opts come last and
// win. EnqueueSetup is the usual way in.
func NewSetupTask(p SetupPayload, opts ...asynq.Option) (*asynq.Task, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	data, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("jobs: encode payload: %w", err)
	}
	all := append([]asynq.Option{
		asynq.TaskID(p.TaskType() + ":" + p.integration() + ":" + randhex.String(8)),
		asynq.Queue(SetupQueue),
		asynq.Retention(SetupRetention),
		asynq.MaxRetry(SetupMaxRetry),
		asynq.Timeout(SetupTimeout),
		asynq.Deadline(time.Now().Add(SetupDeadline)),
	}, opts...)
	return asynq.NewTask(p.TaskType(), data, all...), nil
}

// EnqueueSetup enqueues a set-up task; its result's TaskID is what to poll.
func EnqueueSetup(ctx context.Context, client *asynq.Client, insp *asynq.Inspector, p SetupPayload) (*EnqueueResult, error) {
	id := p.TaskType() + ":" + p.integration() + ":" + randhex.String(8)
	task, err := NewSetupTask(p, asynq.TaskID(id))
	if err != nil {
		return nil, err
	}
	return EnqueueIdempotent(ctx, client, insp, task, SetupQueue, id, EnqueueOptions{})
}

// SetupStatus is the part every set-up result shares. A failed attempt
// writes its result too (ok false, the error), so the screen can show why.
type SetupStatus struct {
	OK        bool   `json:"ok"`
	LatencyMS int64  `json:"latency_ms"`
	HTTPCalls int64  `json:"http_calls"`
	Error     string `json:"error,omitempty"`
}

func (s *SetupStatus) status() *SetupStatus { return s }

// TestResult is integration:test's result.
type TestResult struct {
	SetupStatus
	PageID      string `json:"page_id,omitempty"`
	URL         string `json:"url,omitempty"`
	Title       string `json:"title,omitempty"`
	ParentID    string `json:"parent_id,omitempty"`
	ParentFound bool   `json:"parent_found"` // false: placed where the parent will be created
	Deleted     bool   `json:"deleted,omitempty"`
}

// CheckResult is integration:check's result.
type CheckResult struct {
	SetupStatus
	User       *confluence.User `json:"user,omitempty"`
	Spaces     []SpaceSummary   `json:"spaces"`
	MoreSpaces bool             `json:"more_spaces,omitempty"`
}

// SpaceSummary is one space in a CheckResult.
type SpaceSummary struct {
	ID   string `json:"id"`
	Key  string `json:"key"`
	Name string `json:"name"`
}

// SearchResult is integration:search's result.
type SearchResult struct {
	SetupStatus
	Pages []confluence.PageHit `json:"pages"`
}

type setupResult interface{ status() *SetupStatus }

// setupHandler runs one set-up task type with the publisher's store and
// connector, so set-up sees Confluence exactly as publishing will.
type setupHandler struct {
	p   *Publisher
	new func() SetupPayload
	run func(ctx context.Context, cf Confluence, p SetupPayload) (setupResult, error)
}

func (h *setupHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	taskID, _ := asynq.GetTaskID(ctx)
	log := h.p.Log.With(zap.String("task_id", taskID), zap.String("task_type", t.Type()))
	p := h.new()
	if err := DecodeSetupPayload(t.Payload(), p); err != nil {
		log.Warn("invalid payload archived", zap.Error(err))
		return permanent(fmt.Errorf("invalid payload: %w", err))
	}
	id := p.integration()
	log = log.With(zap.String("integration", id))
	start := time.Now()
	// The publisher's own step: same not-found, key and needs_reauth rules.
	r := &publishRun{h: h.p, p: &PublishPayload{IntegrationID: id}, log: log}
	conn, err := r.loadIntegration(ctx)
	var res setupResult = &SetupStatus{}
	if err == nil {
		res, err = h.run(ctx, conn.cf, p)
	}
	err = classify(id, err)
	st := res.status()
	st.OK, st.LatencyMS = err == nil, time.Since(start).Milliseconds()
	if conn.cf != nil {
		st.HTTPCalls = conn.cf.Calls()
	}
	if err != nil {
		st.Error = err.Error()
	}
	out, _ := json.Marshal(res)
	if _, werr := t.ResultWriter().Write(out); werr != nil {
		log.Warn("write task result", zap.Error(werr))
	}
	var re *ReauthError
	if errors.As(err, &re) {
		h.p.markReauth(ctx, log, id, re.Reason)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", t.Type(), id, err)
	}
	log.Info("set-up task done", zap.Int64("latency_ms", st.LatencyMS), zap.Int64("http_calls", st.HTTPCalls))
	return nil
}

func registerSetup(mux *asynq.ServeMux, p *Publisher) {
	mux.Handle(TypeIntegrationTest, withPriority(&setupHandler{p: p, new: func() SetupPayload { return &TestPayload{} }, run: runTest}))
	mux.Handle(TypeIntegrationCheck, withPriority(&setupHandler{p: p, new: func() SetupPayload { return &CheckPayload{} }, run: runCheck}))
	mux.Handle(TypeIntegrationSearch, withPriority(&setupHandler{p: p, new: func() SetupPayload { return &SearchPayload{} }, run: runSearch}))
}

func runCheck(ctx context.Context, cf Confluence, sp SetupPayload) (setupResult, error) {
	res := &CheckResult{Spaces: []SpaceSummary{}}
	u, err := cf.CurrentUser(ctx)
	if err != nil {
		return res, err
	}
	res.User = u
	spaces, more, err := cf.ListSpaces(ctx, MaxSpaces)
	if err != nil {
		return res, err
	}
	for _, s := range spaces {
		res.Spaces = append(res.Spaces, SpaceSummary{ID: s.ID, Key: s.Key, Name: s.Name})
	}
	res.MoreSpaces = more
	return res, nil
}

func runSearch(ctx context.Context, cf Confluence, sp SetupPayload) (setupResult, error) {
	p := sp.(*SearchPayload)
	res := &SearchResult{Pages: []confluence.PageHit{}}
	limit := p.Limit
	if limit == 0 {
		limit = MaxSearchHits
	}
	hits, err := cf.SearchPages(ctx, p.SpaceKey, p.Query, limit)
	if errors.Is(err, confluence.ErrBadRequest) {
		return res, permanent(fmt.Errorf("search %q in space %s: %w", p.Query, p.SpaceKey, err))
	}
	if err != nil {
		return res, err
	}
	res.Pages = append(res.Pages, hits...)
	return res, nil
}

// runTest creates the test page where a report's parent is (or, when the
// parent does not exist yet, where it will be created). Its title comes
// from the task id, so a re-run after a crash finds the page it made
// instead of making another.
func runTest(ctx context.Context, cf Confluence, sp SetupPayload) (setupResult, error) {
	p := sp.(*TestPayload)
	res := &TestResult{}
	space, err := cf.SpaceByKey(ctx, p.SpaceKey)
	if errors.Is(err, confluence.ErrNotFound) {
		return res, permanent(fmt.Errorf("space %q not found in Confluence, or the integration cannot see it", p.SpaceKey))
	}
	if err != nil {
		return res, err
	}
	// Where a retrospective would go: the same default parent title.
	like := &PublishPayload{Report: Report{Kind: KindRetrospective}, Target: Target{ParentTitle: p.ParentTitle}}
	parent, err := findPageByTitle(ctx, cf, space.ID, PageTitle(like.ParentTitle()))
	switch {
	case err == nil:
		res.ParentID, res.ParentFound = parent.ID, true
	case errors.Is(err, confluence.ErrNotFound):
		res.ParentID = p.RootPageID
	default:
		return res, err
	}
	taskID, _ := asynq.GetTaskID(ctx)
	res.Title = testTitlePrefix + testSuffix(taskID)
	pg, err := cf.CreatePage(ctx, confluence.NewPage{SpaceID: space.ID, ParentID: res.ParentID, Title: res.Title, Body: testPageBody})
	if errors.Is(err, confluence.ErrTitleExists) {
		pg, err = findPageByTitle(ctx, cf, space.ID, res.Title)
	}
	if err != nil {
		return res, err
	}
	res.PageID, res.URL = pg.ID, pg.URL()
	if p.Delete {
		if err := cf.DeletePage(ctx, pg.ID); err != nil && !errors.Is(err, confluence.ErrNotFound) {
			return res, fmt.Errorf("test page %s was created but not deleted: %w", pg.ID, err)
		}
		res.Deleted = true
	}
	return res, nil
}

// testSuffix is the random tail of a set-up TaskID, or a fresh one.
func testSuffix(taskID string) string {
	if i := strings.LastIndexByte(taskID, ':'); i >= 0 && i+1 < len(taskID) {
		return taskID[i+1:]
	}
	return randhex.String(8)
}
