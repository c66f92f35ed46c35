package confluencetest

import (
	"encoding/json"
	"net/http"
	"strings"
)

// Confluence Cloud answers in three error dialects and clients have to tell
// them apart, so the fake reproduces each one exactly (confluence-api.md §1.9,
// §2.5, §3.1):
//
//   - the v2 API:      {"errors":[{"status","code","title","detail"}]}
//   - the v1 API:      {"statusCode","data":{…},"message","reason"}
//   - the gateway:     {"code":401,"message":"Unauthorized"}
//   - the auth server: {"error":"invalid_grant","error_description":"…"}

type v2Error struct {
	Status int     `json:"status"`
	Code   string  `json:"code"`
	Title  string  `json:"title"`
	Detail *string `json:"detail"`
}

// v2Code maps a status to the upper-snake code Confluence puts in errors[].code.
func v2Code(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "BAD_REQUEST"
	case http.StatusUnauthorized:
		return "UNAUTHORIZED"
	case http.StatusForbidden:
		return "FORBIDDEN"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusConflict:
		return "CONFLICT"
	case http.StatusRequestEntityTooLarge:
		return "REQUEST_ENTITY_TOO_LARGE"
	case http.StatusTooManyRequests:
		return "TOO_MANY_REQUESTS"
	case http.StatusServiceUnavailable:
		return "SERVICE_UNAVAILABLE"
	case http.StatusInternalServerError:
		return "INTERNAL_SERVER_ERROR"
	}
	return strings.ToUpper(strings.ReplaceAll(http.StatusText(status), " ", "_"))
}

// writeV2Error answers with the v2 error envelope.
func writeV2Error(w http.ResponseWriter, status int, title string) {
	writeJSON(w, status, map[string]any{
		"errors": []v2Error{{Status: status, Code: v2Code(status), Title: title}},
	})
}

// writeV1Error answers with the v1 error envelope used by /wiki/rest/api.
func writeV1Error(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, map[string]any{
		"statusCode": status,
		"data": map[string]any{
			"authorized": status != http.StatusUnauthorized && status != http.StatusForbidden,
			"valid":      status != http.StatusBadRequest,
			"errors":     []any{},
			"successful": false,
		},
		"message": message,
		"reason":  http.StatusText(status),
	})
}

// writeGatewayError answers like api.atlassian.com does before a request
// reaches Confluence (bad token, unknown cloudId).
func writeGatewayError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, map[string]any{"code": status, "message": message})
}

// writeOAuthError answers like auth.atlassian.com's token endpoint.
func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, map[string]any{"error": code, "error_description": description})
}

// writeTooLarge is the exact 413 Cloud sends for bodies over 5 MiB
// (CONFCLOUD-73881); it is neither the v1 nor the v2 shape.
func writeTooLarge(w http.ResponseWriter) {
	writeJSON(w, http.StatusRequestEntityTooLarge, map[string]any{
		"statusCode": http.StatusRequestEntityTooLarge,
		"message":    "com.atlassian.plugins.rest.common.limitrequest.RequestEntityTooLargeException: Request too large. Requests for this resource can be at most 5242880 bytes",
	})
}

const goneMessage = "com.atlassian.confluence.api.service.exceptions.GoneException: This deprecated endpoint has been removed"

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
