package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"go.uber.org/zap"

	"retropub/outcomes"
)

// saveRecordAndReleaseScript is saveAndReleaseScript that also records
// the outcome: the mapping's revision and its event are one write.
var saveRecordAndReleaseScript = outcomes.ScriptWith(saveAndReleaseLua, 2, 3)

// eventTypes maps a finished publish's result outcome to its event type.
var eventTypes = map[string]string{
	"published":              outcomes.TypePublished,
	"unchanged":              outcomes.TypeUnchanged,
	"skipped_older_revision": outcomes.TypeSkipped,
	"kept_manual_edit":       outcomes.TypeKept,
}

// outcomeOfRun describes the run's end as an outcome of type typ.
func (r *publishRun) outcomeOfRun(typ string) *outcomes.Report {
	o := &outcomes.Report{TaskID: r.taskID, Type: typ, IntegrationID: r.p.IntegrationID, ReportID: r.p.Report.ID,
		Revision: r.p.Report.Revision, EventID: r.p.EventID, StatusTTL: mappingTTL}
	switch {
	case r.res.PageID != "":
		o.Page = &outcomes.Page{ID: r.res.PageID, URL: r.res.URL, Title: r.res.Title, Version: r.res.Version}
	case r.m != nil && r.m.PageID != "":
		o.Page = &outcomes.Page{ID: r.m.PageID, URL: r.m.URL, Title: r.m.Title, Version: r.m.Version}
	}
	return o
}

// saveRecordAndRelease is saveRevision with the outcome recorded in the
// same script.
func (r *publishRun) saveRecordAndRelease(ctx context.Context) error {
	o := r.outcomeOfRun(eventTypes[r.res.Outcome])
	okeys, oargs, err := r.h.Outcomes.ReportKeysArgs(o)
	if err != nil {
		return err
	}
	res, err := r.store.saveRevisionAndRelease(ctx, r.p.Report.Revision, okeys, oargs)
	if err != nil {
		return fmt.Errorf("save revision and outcome: %w", err)
	}
	r.h.Outcomes.Recorded(o, res)
	r.recorded = true
	if err := r.h.Outcomes.Flush(ctx, o.IntegrationID); err != nil {
		r.log.Warn("outcome left in the outbox for the relay", zap.Error(err))
	}
	return nil
}

// recordEnd records how the task ended unless its mapping script already
// did: unchanged and skipped publishes, and publishes that need a person,
// which are parked with their payload. Attempts that will run again
// record nothing.
func (h *Publisher) recordEnd(ctx context.Context, r *publishRun, payload []byte, err error) error {
	if h.Outcomes == nil || r.recorded {
		return nil
	}
	if err == nil {
		typ := eventTypes[r.res.Outcome]
		if typ == "" {
			return nil
		}
		_, rerr := h.Outcomes.RecordReport(ctx, r.outcomeOfRun(typ))
		return rerr
	}
	class, final := parkClass(ctx, err)
	if !final {
		return nil
	}
	o := r.outcomeOfRun(outcomes.TypeParked)
	o.Error = &outcomes.Error{Class: class, Message: err.Error()}
	o.Payload = payload
	_, rerr := h.Outcomes.RecordReport(ctx, o)
	return rerr
}

// parkClass tells whether err ends the task for good, and why: those
// publishes need a person and are parked (asynq's archive would drop them).
func parkClass(ctx context.Context, err error) (class string, final bool) {
	c := classification(err)
	if c.Class == NeedsReauth {
		return outcomes.ClassNeedsReauth, true
	}
	if c.Class == Blocked {
		return outcomes.ClassBlocked, true
	}
	return outcomes.ClassPermanent, c.ends(ctx)
}

// recordInvalid writes report.invalid for a payload that cannot be
// decoded, with what could be read of it.
func (h *Publisher) recordInvalid(ctx context.Context, taskID string, payload []byte, cause error) error {
	if h.Outcomes == nil {
		return nil
	}
	var loose struct {
		IntegrationID string `json:"integration_id"`
		Report        struct {
			ID       string `json:"id"`
			Revision int64  `json:"revision"`
		} `json:"report"`
	}
	_ = json.Unmarshal(payload, &loose) // what can be read; the rest stays empty
	if checkID("integration_id", loose.IntegrationID) != nil {
		loose.IntegrationID = ""
	}
	if checkID("report.id", loose.Report.ID) != nil {
		loose.Report.ID = ""
	}
	return h.Outcomes.Invalid(ctx, taskID, loose.IntegrationID, loose.Report.ID, loose.Report.Revision,
		"invalid payload: "+cause.Error()+" (fix the event and enqueue it again)")
}

// absoluteURL makes a page link absolute against the integration's site:
// Data Center answers links relative to its base URL.
func (r *publishRun) absoluteURL(link string) string {
	if link == "" || r.rec == nil {
		return link
	}
	if u, err := url.Parse(link); err != nil || u.IsAbs() {
		return link
	}
	base := strings.TrimRight(r.rec.BaseURL, "/")
	if base == "" && r.rec.SiteURL != "" {
		base = strings.TrimRight(r.rec.SiteURL, "/") + "/wiki"
	}
	if base == "" {
		return link
	}
	return base + "/" + strings.TrimLeft(link, "/")
}
