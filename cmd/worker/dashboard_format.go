package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"retropub/jobs"
)

// The dashboard's task lists show one line per task: asynqmon prints what
// the payload formatter returns in every list row, so a whole payload made
// each row of the completed list about 900 px tall. The task's own page
// (click its id) shows the whole payload, redacted (jobs.RedactPayload).
//
// asynqmon has one formatter for lists and the task page alike, so the
// dashboard runs two asynqmon handlers on the same Redis and sends the
// task-page API request to the one that formats in full (splitTaskPage).

// summaryLimit bounds a summary line in characters.
const summaryLimit = 140

// payloadSummary is a task's payload in one line: for report:publish the
// integration, report, revision, title and attachment count; for the
// set-up tasks their few fields; for anything else its redacted JSON, cut.
// Only these fields are read, so nothing secret or inline reaches the list.
func payloadSummary(taskType string, payload []byte) string {
	switch taskType {
	case jobs.TypePublishReport:
		var p struct {
			IntegrationID string `json:"integration_id"`
			Report        struct {
				ID       string `json:"id"`
				Revision int64  `json:"revision"`
				Title    string `json:"title"`
			} `json:"report"`
			Attachments []json.RawMessage `json:"attachments"`
		}
		if json.Unmarshal(payload, &p) != nil {
			break
		}
		return oneLine(fmt.Sprintf("%s · %s rev %d · %s · %s",
			p.IntegrationID, p.Report.ID, p.Report.Revision,
			strconv.Quote(cut(p.Report.Title, 50)), plural(len(p.Attachments), "attachment")))
	case jobs.TypeIntegrationTest, jobs.TypeIntegrationCheck, jobs.TypeIntegrationSearch:
		var p struct {
			IntegrationID string `json:"integration_id"`
			SpaceKey      string `json:"space_key"`
			ParentTitle   string `json:"parent_title"`
			Query         string `json:"query"`
			Delete        bool   `json:"delete"`
		}
		if json.Unmarshal(payload, &p) != nil {
			break
		}
		parts := []string{p.IntegrationID}
		if p.SpaceKey != "" {
			parts = append(parts, "space "+p.SpaceKey)
		}
		if p.ParentTitle != "" {
			parts = append(parts, "under "+strconv.Quote(cut(p.ParentTitle, 40)))
		}
		if p.Query != "" {
			parts = append(parts, "query "+strconv.Quote(cut(p.Query, 40)))
		}
		if p.Delete {
			parts = append(parts, "then delete")
		}
		return oneLine(strings.Join(parts, " · "))
	}
	return compactRedacted(payload)
}

// resultSummary is a task's result in one line: the publish outcome, page
// and version, or whether a set-up task succeeded and why not.
func resultSummary(_ string, result []byte) string {
	if len(result) == 0 {
		return ""
	}
	var r struct {
		Outcome   string `json:"outcome"`
		PageID    string `json:"page_id"`
		Version   int    `json:"version"`
		HTTPCalls *int64 `json:"http_calls"`
		Note      string `json:"note"`
		OK        *bool  `json:"ok"`
		Error     string `json:"error"`
	}
	if json.Unmarshal(result, &r) != nil {
		return compactRedacted(result)
	}
	var parts []string
	switch {
	case r.Outcome != "":
		parts = append(parts, r.Outcome)
	case r.OK != nil && *r.OK:
		parts = append(parts, "ok")
	case r.OK != nil:
		parts = append(parts, "failed")
	default:
		return compactRedacted(result)
	}
	if r.PageID != "" {
		page := "page " + r.PageID
		if r.Version > 0 {
			page += " v" + strconv.Itoa(r.Version)
		}
		parts = append(parts, page)
	}
	if r.HTTPCalls != nil {
		parts = append(parts, plural(int(*r.HTTPCalls), "call"))
	}
	if r.Error != "" {
		parts = append(parts, cut(r.Error, 80))
	} else if r.Note != "" {
		parts = append(parts, cut(r.Note, 60))
	}
	return oneLine(strings.Join(parts, " · "))
}

// compactRedacted is JSON redacted, compacted and cut to one line.
func compactRedacted(b []byte) string {
	b = jobs.RedactPayload(b)
	var v any
	if json.Unmarshal(b, &v) == nil {
		if c, err := json.Marshal(v); err == nil {
			b = c
		}
	}
	return oneLine(cut(string(b), summaryLimit))
}

// oneLine replaces control characters (a newline in a title would break
// the row) and bounds the length.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return cut(s, summaryLimit)
}

// cut shortens s to at most n characters, with "…" when it cut.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// splitTaskPage sends the API request of one task's page
// (GET <root>/api/queues/<queue>/tasks/<id>) to full, everything else to
// lists.
func splitTaskPage(root string, lists, full http.Handler) http.Handler {
	prefix := root + "/api/queues/"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rest, ok := strings.CutPrefix(r.URL.Path, prefix); ok && r.Method == http.MethodGet {
			if parts := strings.Split(rest, "/"); len(parts) == 3 && parts[1] == "tasks" && parts[0] != "" && parts[2] != "" {
				full.ServeHTTP(w, r)
				return
			}
		}
		lists.ServeHTTP(w, r)
	})
}
