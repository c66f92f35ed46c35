package jobs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"retropub/confluence"
	"retropub/credstore"
	"retropub/internal/redislock"
)

// The publish steps and how they run: names, order, the run's state and
// the one sequence that wires each step's result into the next. The steps
// themselves are in publish.go; the resumption state in mapping.go.

// stepName names a publish step in logs and in the result's steps.
type stepName string

// The publish steps, in order (docs/design.md §5).
const (
	stepFairShare         stepName = "fair_share"
	stepLockReport        stepName = "lock_report" // takes the lock, reads the mapping, marks a create pending
	stepCheckRevision     stepName = "check_revision"
	stepRender            stepName = "render"
	stepHashAttachments   stepName = "hash_attachments" // url files are downloaded unless their sha256 is given
	stepCheckUnchanged    stepName = "check_unchanged"
	stepLoadIntegration   stepName = "load_integration"
	stepResolveSpace      stepName = "resolve_space"
	stepEnsureParent      stepName = "ensure_parent"
	stepWritePage         stepName = "write_page"
	stepUploadAttachments stepName = "upload_attachments"
	stepSaveRevision      stepName = "save_revision"
)

var stepOrder = []stepName{
	stepFairShare, stepLockReport, stepCheckRevision, stepRender, stepHashAttachments, stepCheckUnchanged,
	stepLoadIntegration, stepResolveSpace, stepEnsureParent, stepWritePage, stepUploadAttachments, stepSaveRevision,
}

// publishRun is one attempt at one task. Each step returns what the later
// ones need and run() keeps it here; what must outlive the attempt is in
// the mapping (store), the only resumption state.
type publishRun struct {
	h      *Publisher
	p      *PublishPayload
	taskID string
	log    *zap.Logger
	store  *mappingStore

	slot  bool         // holds one of the integration's active slots (fair_share)
	m     *mapping     // lock_report: the mapping, kept current by store
	page  renderedPage // render
	files []localFile  // hash_attachments
	rec   *credstore.Record
	cf    Confluence // load_integration
	at    placement  // resolve_space, ensure_parent (write_page may resolve it again)
	// spaceCache is the space cache read along with the integration
	// (load_integration), for resolve_space; nil: not read yet.
	spaceCache *redis.MapStringStringCmd
	recorded   bool // the outcome was recorded with the mapping
	// blockedCleared: cleanup cleared the space's blocked mark (tried,
	// its error logged), so trackBlocked need not.
	blockedCleared bool
	res            PublishResult
}

// renderedPage is the page as it should be: trimmed title, storage body
// (with the ownership proof) and the hash of title and content.
type renderedPage struct{ title, body, hash string }

// placement is where the page goes. The ids that came from the Redis
// cache this attempt are unconfirmed: a 404 under them resolves again.
type placement struct {
	space                     *confluence.Space
	parentID                  string
	spaceCached, parentCached bool
}

// errFinished ends a run early with its outcome set (unchanged, skipped,
// kept): the steps after it are reported skipped.
var errFinished = errors.New("publish finished early")

// step runs one named step: it logs it, records it in the result (ran,
// unless the step recorded something else) and names it in its error.
func step[T any](ctx context.Context, r *publishRun, name stepName, fn func(context.Context) (T, error)) (T, error) {
	v, err := fn(ctx)
	if errors.Is(err, errFinished) {
		r.mark(name, ran)
		return v, err
	}
	if err != nil {
		r.log.Warn("step failed", zap.String("step", string(name)), zap.Error(err))
		return v, fmt.Errorf("%s: %w", name, err)
	}
	r.mark(name, ran)
	// Check first: at info (the default) the fields are never built.
	if ce := r.log.Check(zap.DebugLevel, "step done"); ce != nil {
		ce.Write(zap.String("step", string(name)), zap.String("outcome", r.res.Steps[string(name)]))
	}
	return v, nil
}

// do runs a step that hands nothing on (it checks or writes).
func do(ctx context.Context, r *publishRun, name stepName, fn func(context.Context) error) error {
	_, err := step(ctx, r, name, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) })
	return err
}

// mark records a step's outcome unless the step already recorded one.
func (r *publishRun) mark(name stepName, outcome string) {
	if _, set := r.res.Steps[string(name)]; !set {
		r.res.Steps[string(name)] = outcome
	}
}

func (r *publishRun) run(ctx context.Context) (err error) {
	defer func() {
		// A published run clears the space's blocked mark (trackBlocked)
		// in the round trip that frees its slot.
		r.cleanup(context.WithoutCancel(ctx), err == nil && r.res.Outcome == "published")
	}()
	err = r.steps(ctx)
	if errors.Is(err, errFinished) {
		for _, name := range stepOrder {
			r.mark(name, skipped)
		}
		return nil
	}
	return err
}

func (r *publishRun) steps(ctx context.Context) (err error) {
	if r.slot, err = step(ctx, r, stepFairShare, r.takeSlot); err != nil {
		return err
	}
	if r.m, err = step(ctx, r, stepLockReport, r.store.lockAndRead); err != nil {
		if errors.Is(err, redislock.ErrHeld) {
			return &DeferredError{Reason: "report is being published by another task", Delay: time.Second + rand.N(2*time.Second)}
		}
		return err
	}
	if err = do(ctx, r, stepCheckRevision, r.checkRevision); err != nil {
		return err
	}
	if r.page, err = step(ctx, r, stepRender, r.render); err != nil {
		return err
	}
	if r.files, err = step(ctx, r, stepHashAttachments, r.loadFiles); err != nil {
		return err
	}
	if err = do(ctx, r, stepCheckUnchanged, r.checkUnchanged); err != nil {
		return err
	}
	var conn connection
	if conn, err = step(ctx, r, stepLoadIntegration, r.loadIntegration); err != nil {
		return err
	}
	r.rec, r.cf = conn.rec, conn.cf
	if r.at, err = step(ctx, r, stepResolveSpace, r.resolveSpace); err != nil {
		return err
	}
	if r.at, err = step(ctx, r, stepEnsureParent, r.ensureParent); err != nil {
		return err
	}
	if err = do(ctx, r, stepWritePage, r.writePage); err != nil {
		return err
	}
	if err = do(ctx, r, stepUploadAttachments, r.uploadOrRecreate); err != nil {
		return err
	}
	return do(ctx, r, stepSaveRevision, r.save)
}

// cleanup frees the fair share and the report lock (unless the last step
// released it with the revision) and counts the HTTP calls.
func (r *publishRun) cleanup(ctx context.Context, published bool) {
	r.releaseSlot(ctx, published)
	if err := r.store.release(ctx); err != nil {
		r.log.Warn("release report lock", zap.Error(err))
	}
	if r.cf != nil {
		r.res.HTTPCalls = r.cf.Calls()
	}
}
