package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"retropub/confluence"
	"retropub/credstore"
	"retropub/internal/rediskeys"
	"retropub/internal/redislock"
	"retropub/outcomes"
)

// Confluence is what publishing needs from a Confluence client.
type Confluence interface {
	Instance() string
	Calls() int64
	SpaceByKey(ctx context.Context, key string) (*confluence.Space, error)
	PageByTitle(ctx context.Context, spaceID, title string, withBody bool) (*confluence.Page, error)
	PageByTitleFold(ctx context.Context, spaceID, title string) (*confluence.Page, error)
	PageByID(ctx context.Context, id string, withBody bool) (*confluence.Page, error)
	CreatePage(ctx context.Context, p confluence.NewPage) (*confluence.Page, error)
	UpdatePage(ctx context.Context, u confluence.PageUpdate) (*confluence.Page, error)
	AttachmentByName(ctx context.Context, pageID, filename string) (*confluence.Attachment, error)
	AddAttachments(ctx context.Context, pageID string, files []confluence.Upload) ([]confluence.Attachment, error)
	UpdateAttachment(ctx context.Context, pageID, attachmentID string, file confluence.Upload) (*confluence.Attachment, error)
	SetupCalls // integration:check, search and test (setup.go)
}

// Integrations is what publishing needs from the credential store.
type Integrations interface {
	Get(ctx context.Context, id string) (*credstore.Record, error)
	SetStatus(ctx context.Context, id string, st credstore.Status) error
}

// Connector builds (or reuses) the client for an integration's instance.
type Connector func(ctx context.Context, rec *credstore.Record) (Confluence, error)

// Publisher handles report:publish tasks.
type Publisher struct {
	Redis        redis.UniversalClient
	Integrations Integrations
	Connect      Connector
	Log          *zap.Logger
	Limits       Limits
	// Legacy adopts keys still under their pre-tag names until `worker
	// migrate` has run (nil: a new deployment or a cluster).
	Legacy *rediskeys.Fallback
	// Outcomes records every ended task's outcome (DESIGN §10); nil
	// records none.
	Outcomes *outcomes.Recorder

	// Attachments by url: the hosts they may come from (ATTACHMENT_URL_HOSTS),
	// the size cap (ATTACHMENT_MAX_BYTES; 0: 100 MiB) and the client that
	// downloads them (nil: NewDownloadClient), never the Confluence one.
	AttachmentURLHosts []string
	AttachmentMaxBytes int64
	Downloads          *http.Client

	// Ownership signs the footer of the pages we write and decides which
	// found pages are ours (ownership.go); nil: legacy footers only.
	Ownership *Ownership
}

// lockTTL outlives the task timeout so a running attempt never loses its
// lock; a crashed attempt's retry takes it over (same task id).
const lockTTL = PublishTimeout + time.Minute

// maxUploadBatch splits multipart uploads only when they would pass 64 MiB.
const maxUploadBatch = 64 << 20

// Step outcomes recorded in the task result.
const (
	ran     = "ran"
	skipped = "skipped"
)

// PublishResult is the task's result (asynq ResultWriter, JSON).
type PublishResult struct {
	Outcome   string            `json:"outcome"` // published, unchanged, skipped_older_revision, kept_manual_edit
	PageID    string            `json:"page_id,omitempty"`
	URL       string            `json:"url,omitempty"`
	Title     string            `json:"title,omitempty"`
	Version   int               `json:"version,omitempty"`
	Revision  int64             `json:"revision"`
	Steps     map[string]string `json:"steps"`
	HTTPCalls int64             `json:"http_calls"`
	Note      string            `json:"note,omitempty"`
}

// ProcessTask implements asynq.Handler: publish, then the result.
func (h *Publisher) ProcessTask(ctx context.Context, t *asynq.Task) error {
	taskID, _ := asynq.GetTaskID(ctx)
	res, err := h.publish(ctx, taskID, t.Payload())
	if err != nil {
		return err
	}
	setOutcome(ctx, res.Outcome)
	out, _ := json.Marshal(res)
	if _, err := t.ResultWriter().Write(out); err != nil {
		h.Log.Warn("write task result", zap.String("task_id", taskID), zap.Error(err))
	}
	return nil
}

// publish runs one attempt at a report:publish payload and says how it
// ended: the result, or the error asynq acts on (classified, deferrals
// capped, a needs_reauth integration marked, the outcome recorded).
func (h *Publisher) publish(ctx context.Context, taskID string, payload []byte) (*PublishResult, error) {
	attempt, _ := asynq.GetRetryCount(ctx)
	// The task's fields go into one child logger, built once the payload
	// is decoded: zap encodes With fields eagerly, and a second With would
	// copy the first one's encoded fields on every publish.
	fields := make([]zap.Field, 0, 7)
	fields = append(fields, zap.String("task_id", taskID), zap.String("task_type", TypePublishReport), zap.Int("attempt", attempt+1))
	p, err := DecodePublishPayload(payload)
	if err != nil {
		log := h.Log.With(fields...)
		log.Warn("invalid payload archived", zap.Error(err))
		if rerr := h.recordInvalid(ctx, taskID, payload, err); rerr != nil {
			return nil, rerr // runs again: no task ends without its event
		}
		return nil, permanent(fmt.Errorf("invalid payload: %w", err))
	}
	log := h.Log.With(append(fields, zap.String("integration", p.IntegrationID), zap.String("report_id", p.Report.ID),
		zap.Int64("revision", p.Report.Revision), zap.String("event_id", p.EventID))...)
	r := &publishRun{h: h, p: p, taskID: taskID, log: log, res: PublishResult{Revision: p.Report.Revision, Steps: map[string]string{}}}
	if taskID == "" {
		r.taskID = p.TaskID()
	}
	r.store = newMappingStore(h.Redis, h.Legacy, p.IntegrationID, p.Report.ID, r.taskID)
	err = h.capDeferrals(ctx, r.taskID, classify(p.IntegrationID, asBlocked(p, r.run(ctx))))
	h.trackBlocked(ctx, log, p, r.res.Outcome, r.blockedCleared, err)
	var re *ReauthError
	if errors.As(err, &re) && !re.Marked {
		h.markReauth(ctx, log, p.IntegrationID, re.Reason)
	}
	if rerr := h.recordEnd(ctx, r, payload, err); rerr != nil {
		log.Warn("record outcome", zap.Error(rerr))
		return nil, rerr // runs again: no task ends without its event
	}
	if err != nil {
		return nil, fmt.Errorf("publish report %s rev %d: %w", p.Report.ID, p.Report.Revision, err)
	}
	log.Info("publish done", zap.String("outcome", r.res.Outcome), zap.String("page_id", r.res.PageID), zap.Int64("http_calls", r.res.HTTPCalls))
	return &r.res, nil
}

func (h *Publisher) markReauth(ctx context.Context, log *zap.Logger, id, reason string) {
	st := credstore.Status{NeedsReauth: true, Reason: reason, Since: time.Now().UTC()}
	if err := h.Integrations.SetStatus(ctx, id, st); err != nil {
		log.Error("mark integration needs_reauth", zap.Error(err))
		return
	}
	log.Warn("integration marked needs_reauth", zap.String("reason", reason))
	if h.Outcomes != nil {
		if err := h.Outcomes.NeedsReauth(ctx, id, reason); err != nil {
			log.Error("record integration needs_reauth", zap.Error(err))
		}
	}
}

// checkRevision ends the run when a newer revision is already published.
func (r *publishRun) checkRevision(ctx context.Context) error {
	if m := r.m; m.Revision > r.p.Report.Revision {
		r.finish("skipped_older_revision", fmt.Sprintf("revision %d is already published", m.Revision))
		// Releases the lock and records the outcome in one script; the
		// revision is never lowered.
		return r.finished(ctx)
	}
	return nil
}

func (r *publishRun) render(context.Context) (renderedPage, error) {
	title, body := PageTitle(r.p.Report.Title), RenderPage(r.p)
	if err := checkBodySize(body); err != nil {
		return renderedPage{}, err
	}
	hash := BodyHash(title, body)
	// The proof goes in after hashing: the hash stays a function of the
	// content, so pages written before proofs are not all rewritten.
	return renderedPage{title: title, body: r.h.Ownership.Seal(body, r.p.IntegrationID, r.p.Report.ID), hash: hash}, nil
}

// checkUnchanged decides from the mapping alone, before any credential is
// loaded: an unchanged republish makes no HTTP request at all.
func (r *publishRun) checkUnchanged(ctx context.Context) error {
	m := r.m
	if m.PageID == "" || m.TitleWanted != r.page.title || m.BodyHash != r.page.hash {
		return nil
	}
	for _, f := range r.files {
		if m.Files[f.att.Filename].Hash != f.hash {
			return nil
		}
	}
	r.res.PageID, r.res.Title, r.res.Version, r.res.URL = m.PageID, m.Title, m.Version, m.URL
	r.finish("unchanged", "")
	// The revision is in Confluence now as much as if it had been written:
	// raise the mapping's, so an older revision arriving later is skipped.
	return r.finished(ctx)
}

// finish sets the outcome of a run that ends before writing.
func (r *publishRun) finish(outcome, note string) {
	r.res.Outcome, r.res.Note = outcome, note
}

// finished saves the revision (and the outcome) for a run that ends
// early, and stops the steps.
func (r *publishRun) finished(ctx context.Context) error {
	if err := r.saveRevision(ctx); err != nil {
		return err
	}
	return errFinished
}

// connection is the integration's record and the client for its instance.
type connection struct {
	rec *credstore.Record
	cf  Confluence
}

// integrationsAlong is implemented by credstore.Store: Get with other
// commands in the same round trip.
type integrationsAlong interface {
	GetAlong(ctx context.Context, id string, along func(redis.Pipeliner)) (*credstore.Record, error)
}

// getIntegration reads the integration's record and, when the store can
// pipeline, the space cache resolve_space reads next (r.spaceCache): one
// round trip for both. The cache is adopted from its legacy name first,
// as resolve_space would; if that fails, resolve_space reads it itself.
func (r *publishRun) getIntegration(ctx context.Context) (*credstore.Record, error) {
	st, ok := r.h.Integrations.(integrationsAlong)
	if !ok || r.h.Redis == nil {
		return r.h.Integrations.Get(ctx, r.p.IntegrationID)
	}
	key := spaceKey(r.p.IntegrationID, r.p.Target.SpaceKey)
	if r.h.Legacy.Adopt(ctx, key) != nil {
		return r.h.Integrations.Get(ctx, r.p.IntegrationID)
	}
	return st.GetAlong(ctx, r.p.IntegrationID, func(p redis.Pipeliner) {
		r.spaceCache = p.HGetAll(ctx, key)
	})
}

func (r *publishRun) loadIntegration(ctx context.Context) (connection, error) {
	rec, err := r.getIntegration(ctx)
	if errors.Is(err, credstore.ErrNotFound) {
		return connection{}, permanent(fmt.Errorf("integration %q does not exist: create it with `worker integrations put`", r.p.IntegrationID))
	}
	var uk *credstore.UnknownKeyError
	if errors.As(err, &uk) || errors.Is(err, credstore.ErrCannotDecrypt) {
		return connection{}, permanent(err)
	}
	if err != nil {
		return connection{}, err
	}
	if rec.Status.NeedsReauth {
		return connection{}, &ReauthError{Integration: rec.ID, Reason: rec.Status.Reason, Marked: true}
	}
	cf, err := r.h.Connect(ctx, rec)
	if err != nil {
		return connection{}, err
	}
	return connection{rec: rec, cf: cf}, nil
}

func (r *publishRun) resolveSpace(ctx context.Context) (placement, error) {
	var at placement
	key := spaceKey(r.p.IntegrationID, r.p.Target.SpaceKey)
	cached := r.spaceCache // read (and adopted) with the integration
	r.spaceCache = nil     // once: resolving again reads Redis anew
	if cached == nil {
		if err := r.h.Legacy.Adopt(ctx, key); err != nil {
			return at, err
		}
		cached = r.h.Redis.HGetAll(ctx, key)
	}
	if v, err := cached.Result(); err == nil && v["id"] != "" {
		at.space = &confluence.Space{ID: v["id"], Key: r.p.Target.SpaceKey, HomepageID: v["homepage"]}
		at.spaceCached = true
		r.res.Steps[string(stepResolveSpace)] = "cached"
		return at, nil
	}
	sp, err := r.cf.SpaceByKey(ctx, r.p.Target.SpaceKey)
	if errors.Is(err, confluence.ErrNotFound) {
		return at, permanent(fmt.Errorf("space %q not found in Confluence, or the integration cannot see it", r.p.Target.SpaceKey))
	}
	if err != nil {
		return at, err
	}
	at.space = sp
	pipe := r.h.Redis.TxPipeline()
	pipe.HSet(ctx, key, "id", sp.ID, "homepage", sp.HomepageID)
	pipe.Expire(ctx, key, cacheTTL)
	_, err = pipe.Exec(ctx)
	return at, err
}

// ensureParent finds or creates the parent page; a 404 while the space id
// came from the cache means the space id is stale: resolve both again.
func (r *publishRun) ensureParent(ctx context.Context) (placement, error) {
	at, err := r.ensureParentOnce(ctx, r.at)
	if errors.Is(err, confluence.ErrNotFound) && at.spaceCached {
		return r.resolveAgain(ctx, at)
	}
	return at, err
}

// ensureParentOnce finds or creates the parent page ("Retrospectives" …):
// cached id, else by title in the whole space, else created under a short
// lock so racing jobs make one parent.
func (r *publishRun) ensureParentOnce(ctx context.Context, at placement) (placement, error) {
	title := PageTitle(r.p.ParentTitle())
	ckey := parentKey(r.p.IntegrationID, at.space.ID, r.p.Target.RootPageID, title)
	if err := r.h.Legacy.Adopt(ctx, ckey, parentLockKey(r.p.IntegrationID, at.space.ID, title)); err != nil {
		return at, err
	}
	if id, err := r.h.Redis.Get(ctx, ckey).Result(); err == nil && id != "" {
		at.parentID, at.parentCached = id, true
		r.res.Steps[string(stepEnsureParent)] = "cached"
		return at, nil
	}
	remember := func(id string) (placement, error) {
		at.parentID = id
		return at, r.h.Redis.Set(ctx, ckey, id, cacheTTL).Err()
	}
	pg, use, err := r.findParent(ctx, at.space.ID, title)
	if err == nil {
		if r.p.Target.RootPageID != "" && pg.ParentID != r.p.Target.RootPageID {
			r.log.Info("parent page found outside root_page_id; using it", zap.String("parent_id", pg.ID))
		}
		return remember(pg.ID)
	} else if !errors.Is(err, confluence.ErrNotFound) {
		return at, err
	}
	l := redislock.New(r.h.Redis, parentLockKey(r.p.IntegrationID, at.space.ID, title), r.taskID)
	if err := l.Acquire(ctx, 30*time.Second); err != nil {
		if errors.Is(err, redislock.ErrHeld) {
			return at, &DeferredError{Reason: "parent page is being created by another task", Delay: time.Second + rand.N(time.Second)}
		}
		return at, err
	}
	defer l.Release(context.WithoutCancel(ctx))
	if id, err := r.h.Redis.Get(ctx, ckey).Result(); err == nil && id != "" {
		at.parentID = id
		return at, nil
	}
	pg, err = r.cf.CreatePage(ctx, confluence.NewPage{
		SpaceID: at.space.ID, ParentID: r.p.Target.RootPageID, Title: use,
		Body: "<p>Reports published by retropub.</p>",
	})
	if errors.Is(err, confluence.ErrTitleExists) {
		// Created meanwhile, or held under another case: find it again.
		pg, err = findPageByTitle(ctx, r.cf, at.space.ID, use)
	}
	if err != nil {
		return at, err
	}
	return remember(pg.ID)
}

// resolveAgain forgets the cached space and parent ids after Confluence
// answered 404 to a create under them, and looks both up again: a space
// that is really gone ends the task (resolveSpace), a deleted parent is
// found or created anew.
func (r *publishRun) resolveAgain(ctx context.Context, stale placement) (placement, error) {
	r.log.Info("cached space or parent id refused by Confluence; resolving again", zap.String("space_id", stale.space.ID), zap.String("parent_id", stale.parentID))
	keys := []string{spaceKey(r.p.IntegrationID, r.p.Target.SpaceKey),
		parentKey(r.p.IntegrationID, stale.space.ID, r.p.Target.RootPageID, PageTitle(r.p.ParentTitle()))}
	if err := r.h.Redis.Del(ctx, keys...).Err(); err != nil {
		return stale, err
	}
	delete(r.res.Steps, string(stepResolveSpace))
	delete(r.res.Steps, string(stepEnsureParent))
	at, err := r.resolveSpace(ctx)
	if err != nil {
		return at, err
	}
	at, err = r.ensureParentOnce(ctx, at)
	r.mark(stepResolveSpace, "resolved_again")
	r.mark(stepEnsureParent, "resolved_again")
	return at, err
}

// findPageByTitle looks a title up exactly, then case-insensitively,
// because Confluence's filter is case-sensitive while uniqueness is not.
// Publishing and the set-up test page both find pages this way.
func findPageByTitle(ctx context.Context, cf Confluence, spaceID, title string) (*confluence.Page, error) {
	pg, err := cf.PageByTitle(ctx, spaceID, title, false)
	if errors.Is(err, confluence.ErrNotFound) {
		return cf.PageByTitleFold(ctx, spaceID, title)
	}
	return pg, err
}

func (r *publishRun) writePage(ctx context.Context) error {
	if r.m.PageID != "" {
		if r.m.TitleWanted == r.page.title && r.m.BodyHash == r.page.hash {
			r.res.Steps[string(stepWritePage)] = skipped
			return nil
		}
		err := r.updatePage(ctx)
		if !errors.Is(err, confluence.ErrNotFound) {
			return err
		}
		// Deleted in Confluence: create it anew and remap.
		r.log.Info("mapped page is gone; creating it again", zap.String("page_id", r.m.PageID))
		if err := r.store.forgetPage(ctx); err != nil {
			return err
		}
	}
	return r.createPage(ctx)
}

// updatePage writes version+1 of the page. A version conflict means the
// page changed since we wrote it: someone edited it in Confluence.
func (r *publishRun) updatePage(ctx context.Context) error {
	title := r.m.Title
	if r.m.TitleWanted != r.page.title || title == "" {
		title = r.page.title
	}
	next := r.m.Version + 1
	for attempt := 0; ; attempt++ {
		pg, err := r.cf.UpdatePage(ctx, confluence.PageUpdate{
			ID: r.m.PageID, SpaceID: r.at.space.ID, ParentID: r.m.ParentID, Title: title, Body: r.page.body,
			Version: next, Message: versionMessage(r.p),
		})
		switch {
		case err == nil:
			return r.saveWrittenPage(ctx, pg, false)
		case errors.Is(err, confluence.ErrVersionConflict) && attempt < 2:
			cur, gerr := r.cf.PageByID(ctx, r.m.PageID, true)
			if gerr != nil {
				return gerr
			}
			if cur.Body.Storage.Value == r.page.body {
				// Our own write, whose answer an earlier attempt lost: not
				// a person's edit, whatever the policy.
				return r.saveWrittenPage(ctx, cur, false)
			}
			if cur.Version.Number != r.m.Version && r.rec.EditPolicy == "keep" {
				r.res.PageID, r.res.Version, r.res.Title, r.res.URL = cur.ID, cur.Version.Number, cur.Title, r.absoluteURL(cur.URL())
				note := fmt.Sprintf("page %s was edited in Confluence since retropub wrote version %d (now version %d); the integration's edit_policy is keep, so revision %d was not written",
					cur.ID, r.m.Version, cur.Version.Number, r.p.Report.Revision)
				r.finish("kept_manual_edit", note)
				r.log.Info("manual edit kept", zap.String("page_id", cur.ID), zap.Int("our_version", r.m.Version),
					zap.Int("current_version", cur.Version.Number), zap.String("edit_policy", "keep"), zap.String("reason", note))
				return r.finished(ctx)
			}
			next = cur.Version.Number + 1
		case errors.Is(err, confluence.ErrTitleExists) && title == r.page.title:
			title = r.disambiguate(1)
		default:
			return err
		}
	}
}

// createPage creates the report page, looking first only when an earlier
// attempt may already have created it (its pending marker is there).
func (r *publishRun) createPage(ctx context.Context) error {
	if r.m.Pending != "" {
		pg, err := r.findOwn(ctx, r.page.title)
		if err != nil {
			return err
		}
		if pg != nil {
			return r.adopt(ctx, pg)
		}
	}
	// The pending marker is in the mapping already: lock_report marks it
	// when no page is mapped, forgetPage when the mapped one is gone.
	for n := 0; n < 3; n++ {
		title := r.disambiguate(n)
		pg, err := r.cf.CreatePage(ctx, confluence.NewPage{SpaceID: r.at.space.ID, ParentID: r.at.parentID, Title: title, Body: r.page.body})
		if err == nil {
			return r.saveWrittenPage(ctx, pg, true)
		}
		if errors.Is(err, confluence.ErrNotFound) {
			// The space or the parent is gone (or no longer visible): when
			// either id came from the cache, drop both and resolve again.
			if !r.at.spaceCached && !r.at.parentCached {
				return err
			}
			at, err := r.resolveAgain(ctx, r.at)
			if err != nil {
				return err
			}
			r.at = at
			n--
			continue
		}
		if !errors.Is(err, confluence.ErrTitleExists) {
			return err
		}
		if pg, ferr := r.findOwn(ctx, title); ferr == nil && pg != nil {
			return r.adopt(ctx, pg)
		}
	}
	return permanent(fmt.Errorf("title %q and its disambiguated forms are all taken in space %s", r.page.title, r.p.Target.SpaceKey))
}

// disambiguate gives the n-th title to try: the title, then with the date,
// then with the report id (DESIGN §5).
func (r *publishRun) disambiguate(n int) string {
	suffix := ""
	switch n {
	case 0:
		return r.page.title
	case 1:
		suffix = heldDate(r.p.Report.HeldAt)
		if suffix == "" {
			suffix = r.p.Report.ID
		}
	default:
		suffix = r.p.Report.ID
	}
	return titleWithSuffix(r.page.title, suffix)
}

// findOwn finds a page by title and accepts it only if it is this
// report's: under the expected parent, with a footer that proves it
// (Ownership.Owns). nil, nil when there is no such page or it is not ours.
func (r *publishRun) findOwn(ctx context.Context, title string) (*confluence.Page, error) {
	pg, err := r.cf.PageByTitle(ctx, r.at.space.ID, title, true)
	if errors.Is(err, confluence.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if ok, why := r.h.Ownership.Owns(pg.Body.Storage.Value, pg.ParentID, r.p.IntegrationID, r.p.Report.ID, r.at.parentID); !ok {
		r.log.Info("page with the report's title is not ours", zap.String("page_id", pg.ID), zap.String("reason", why))
		return nil, nil
	}
	return pg, nil
}

// adopt maps a page an earlier attempt created, then brings it up to date.
func (r *publishRun) adopt(ctx context.Context, pg *confluence.Page) error {
	r.log.Info("adopting page created by an earlier attempt", zap.String("page_id", pg.ID))
	r.m.PageID, r.m.Version, r.m.ParentID, r.m.Title, r.m.TitleWanted = pg.ID, pg.Version.Number, pg.ParentID, pg.Title, r.page.title
	if pg.Body.Storage.Value == r.page.body {
		return r.saveWrittenPage(ctx, pg, false)
	}
	return r.updatePage(ctx)
}

// saveWrittenPage records the page we just wrote in the mapping.
func (r *publishRun) saveWrittenPage(ctx context.Context, pg *confluence.Page, fresh bool) error {
	parent := pg.ParentID
	if parent == "" {
		parent = r.at.parentID
	}
	url := r.absoluteURL(pg.URL())
	if err := r.store.savePage(ctx, pg, r.at.space.ID, parent, r.page.title, r.page.hash, url, fresh); err != nil {
		return err
	}
	r.res.URL = url
	return nil
}

// uploadAttachments sends what changed: known attachments get a new
// version through /data, new ones go up together in one multipart POST.
func (r *publishRun) uploadAttachments(ctx context.Context) error {
	var add []localFile
	updated := 0
	for _, f := range r.files {
		st := r.m.Files[f.att.Filename]
		if st.Hash == f.hash {
			continue
		}
		if st.ID == "" && !r.m.Fresh {
			// Not recorded and the page is not new: an earlier attempt or a
			// person may have uploaded it. Look before writing.
			a, err := r.cf.AttachmentByName(ctx, r.m.PageID, f.att.Filename)
			switch {
			case err == nil && a.Comment() == hashComment(f.hash):
				if err := r.saveFile(ctx, f.att.Filename, a.ID, f.hash); err != nil {
					return err
				}
				continue
			case err == nil:
				st.ID = a.ID
			case !errors.Is(err, confluence.ErrNotFound):
				return err
			}
		}
		if st.ID != "" {
			var a *confluence.Attachment
			err := r.withUploads([]localFile{f}, func(u []confluence.Upload) (err error) {
				a, err = r.cf.UpdateAttachment(ctx, r.m.PageID, st.ID, u[0])
				return err
			})
			if err != nil {
				return err
			}
			if err := r.saveFile(ctx, f.att.Filename, a.ID, f.hash); err != nil {
				return err
			}
			updated++
			continue
		}
		add = append(add, f)
	}
	if len(add) == 0 {
		if updated == 0 {
			r.res.Steps[string(stepUploadAttachments)] = skipped
		}
		return r.store.clearFresh(ctx)
	}
	// From here an upload may go through without us hearing of it: a
	// later attempt must look by file name first.
	if err := r.store.clearFresh(ctx); err != nil {
		return err
	}
	for _, batch := range batches(add) {
		if err := r.addBatch(ctx, batch); err != nil {
			return err
		}
	}
	return nil
}

func (r *publishRun) addBatch(ctx context.Context, batch []localFile) error {
	var got []confluence.Attachment
	err := r.withUploads(batch, func(u []confluence.Upload) (err error) {
		got, err = r.cf.AddAttachments(ctx, r.m.PageID, u)
		return err
	})
	if errors.Is(err, confluence.ErrFileExists) {
		// Someone added one of these names meanwhile: go one by one.
		r.m.Fresh = false
		for _, f := range batch {
			r.m.Files[f.att.Filename] = fileState{}
		}
		return r.uploadOneByOne(ctx, batch)
	}
	if err != nil {
		return err
	}
	byName := map[string]string{}
	for _, a := range got {
		byName[a.Title] = a.ID
	}
	saved := make(map[string]fileState, len(batch))
	for _, f := range batch {
		saved[f.att.Filename] = fileState{ID: byName[f.att.Filename], Hash: f.hash}
	}
	return r.store.saveFiles(ctx, saved) // one write for the batch
}

func (r *publishRun) uploadOneByOne(ctx context.Context, batch []localFile) error {
	for _, f := range batch {
		a, err := r.cf.AttachmentByName(ctx, r.m.PageID, f.att.Filename)
		switch {
		case err == nil:
			id := a.ID
			err = r.withUploads([]localFile{f}, func(u []confluence.Upload) (err error) {
				a, err = r.cf.UpdateAttachment(ctx, r.m.PageID, id, u[0])
				return err
			})
		case errors.Is(err, confluence.ErrNotFound):
			var got []confluence.Attachment
			err = r.withUploads([]localFile{f}, func(u []confluence.Upload) (err error) {
				got, err = r.cf.AddAttachments(ctx, r.m.PageID, u)
				return err
			})
			if err == nil && len(got) > 0 {
				a = &got[0]
			}
		}
		if err != nil {
			return err
		}
		id := ""
		if a != nil {
			id = a.ID
		}
		if err := r.saveFile(ctx, f.att.Filename, id, f.hash); err != nil {
			return err
		}
	}
	return nil
}

// batches splits files into multipart requests of at most 64 MiB; a url
// file of unknown size goes alone.
func batches(files []localFile) [][]localFile {
	var out [][]localFile
	var cur []localFile
	var size int64
	for _, f := range files {
		n := f.size
		if n == 0 && f.src != nil {
			n = maxUploadBatch
		}
		if len(cur) > 0 && size+n > maxUploadBatch {
			out, cur, size = append(out, cur), nil, 0
		}
		cur = append(cur, f)
		size += n
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func hashComment(hash string) string { return "sha256:" + hash }

func (r *publishRun) saveFile(ctx context.Context, name, id, hash string) error {
	return r.store.saveFiles(ctx, map[string]fileState{name: {ID: id, Hash: hash}})
}

func (r *publishRun) save(ctx context.Context) error {
	r.res.Outcome = "published"
	r.res.PageID, r.res.Title, r.res.Version = r.m.PageID, r.m.Title, r.m.Version
	if r.res.URL == "" {
		r.res.URL = r.m.URL
	}
	return r.saveRevision(ctx)
}

// saveRevision raises the mapping's revision, never lowers it, and
// releases the report lock with it: the run is over.
func (r *publishRun) saveRevision(ctx context.Context) error {
	if r.h.Outcomes != nil {
		return r.saveRecordAndRelease(ctx)
	}
	_, err := r.store.saveRevisionAndRelease(ctx, r.p.Report.Revision, nil, nil)
	return err
}
