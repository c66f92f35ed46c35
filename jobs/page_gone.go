package jobs

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"retropub/confluence"
)

// uploadOrRecreate is the upload_attachments step. A 404 on any upload
// path (a new version through …/data, a new file, the look-up by name)
// leads back to the page, as the PUT path does (writePage): when the page
// is gone (a person deleted it), it is created again, remapped, and its
// files go up to the new page. When the page is there, the 404 was a
// file's (a person deleted an attachment): what we knew of the files is
// forgotten and they go up again, each looked up by name first. Either
// way the task does not retry a 404 for hours.
func (r *publishRun) uploadOrRecreate(ctx context.Context) error {
	err := r.uploadAttachments(ctx)
	if !errors.Is(err, confluence.ErrNotFound) || r.m.PageID == "" {
		return err
	}
	_, perr := r.cf.PageByID(ctx, r.m.PageID, false)
	switch {
	case perr == nil:
		r.log.Info("an attachment upload answered 404 on a page that exists; uploading its files again", zap.String("page_id", r.m.PageID), zap.Error(err))
		if ferr := r.store.forgetFiles(ctx); ferr != nil {
			return ferr
		}
		return r.uploadAttachments(ctx)
	case !errors.Is(perr, confluence.ErrNotFound):
		return perr
	}
	r.log.Info("mapped page is gone (an attachment upload answered 404); creating it again", zap.String("page_id", r.m.PageID))
	if ferr := r.store.forgetFiles(ctx); ferr != nil {
		return ferr
	}
	if ferr := r.store.forgetPage(ctx); ferr != nil { // a create may go through unheard: look first
		return ferr
	}
	if cerr := r.createPage(ctx); cerr != nil {
		return cerr
	}
	return r.uploadAttachments(ctx)
}
