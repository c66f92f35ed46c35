package main

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"

	"retropub/jobs"
)

// dashboard mounts asynqmon at /dashboard behind a login. The task lists
// show one line per task (payloadSummary, resultSummary); a task's own
// page shows its payload and result whole, as indented JSON, redacted:
// inline attachment data is elided (it is content, not something an
// operator reads) and URLs lose their query (signed attachment URLs carry
// credentials there).
func dashboard(conn asynq.RedisConnOpt, user, password string, readOnly bool) (http.Handler, func() error) {
	const root = "/dashboard"
	lists := asynqmon.New(asynqmon.Options{
		RootPath:         root,
		RedisConnOpt:     conn,
		ReadOnly:         readOnly,
		PayloadFormatter: asynqmon.PayloadFormatterFunc(payloadSummary),
		ResultFormatter:  asynqmon.ResultFormatterFunc(resultSummary),
	})
	full := asynqmon.New(asynqmon.Options{
		RootPath:         root,
		RedisConnOpt:     conn,
		ReadOnly:         readOnly,
		PayloadFormatter: asynqmon.PayloadFormatterFunc(func(_ string, b []byte) string { return prettyJSON(b) }),
		ResultFormatter:  asynqmon.ResultFormatterFunc(func(_ string, b []byte) string { return prettyJSON(b) }),
	})
	closeBoth := func() error { return errors.Join(lists.Close(), full.Close()) }
	// With DASHBOARD_READONLY=false a login cached by the browser would let
	// any web page POST changes (pause a queue, delete tasks): only
	// same-origin requests may use anything but GET, HEAD and OPTIONS
	// (Sec-Fetch-Site, else Origin against Host).
	return http.NewCrossOriginProtection().Handler(basicAuth(splitTaskPage(root, lists, full), user, password)), closeBoth
}

// prettyJSON is b redacted (signed URLs lose their query, inline data is
// elided: jobs.RedactPayload) and indented.
func prettyJSON(b []byte) string {
	b = jobs.RedactPayload(b)
	var out bytes.Buffer
	if json.Indent(&out, b, "", "  ") != nil {
		return string(b)
	}
	return out.String()
}

func basicAuth(next http.Handler, user, password string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 ||
			subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="retropub dashboard"`)
			http.Error(w, "login required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
