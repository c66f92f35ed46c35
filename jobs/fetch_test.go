package jobs

import (
	"errors"
	"testing"
)

func TestHostAllowed(t *testing.T) {
	hosts := []string{"files.example.com", "*.cdn.example.net", " Upper.Example.org "}
	for host, want := range map[string]bool{
		"files.example.com":           true,
		"FILES.example.com.":          true,
		"a.cdn.example.net":           true,
		"a.b.cdn.example.net":         true,
		"cdn.example.net":             false, // *.suffix is for hosts below suffix
		"evilcdn.example.net":         false,
		"upper.example.org":           true,
		"example.com":                 false,
		"files.example.com.evil.test": false,
		"":                            false,
	} {
		if got := HostAllowed(hosts, host); got != want {
			t.Errorf("HostAllowed(%q) = %v, want %v", host, got, want)
		}
	}
	if HostAllowed(nil, "files.example.com") {
		t.Error("an empty ATTACHMENT_URL_HOSTS allows a host")
	}
}

func TestCheckMediaType(t *testing.T) {
	for _, tc := range []struct {
		declared, served string
		ok               bool
	}{
		{"image/png", "image/png", true},
		{"image/png", "IMAGE/PNG; charset=binary", true},
		{"text/csv; charset=utf-8", "text/csv", true},
		{"image/png", "", true},
		{"", "text/html", true},
		{"application/pdf", "application/octet-stream", true},
		{"image/png", "text/html; charset=utf-8", false},
		{"application/pdf", "application/zip", false},
	} {
		err := checkMediaType("f", tc.declared, tc.served)
		var pe *PermanentError
		if (err == nil) != tc.ok || (err != nil && !errors.As(err, &pe)) {
			t.Errorf("checkMediaType(%q, %q) = %v", tc.declared, tc.served, err)
		}
	}
}

func TestUploadContentType(t *testing.T) {
	for _, tc := range []struct {
		att    Attachment
		served string
		want   string
	}{
		{Attachment{Filename: "a.png", ContentType: "image/png; x=y"}, "", "image/png; x=y"},
		{Attachment{Filename: "a.PNG"}, "text/plain", "image/png"},
		{Attachment{Filename: "data.csv", URL: "https://x/data.csv"}, "text/csv", "text/csv"},
		{Attachment{Filename: "blob"}, "", "application/octet-stream"},
	} {
		lf := localFile{att: tc.att}
		if tc.att.URL != "" {
			lf.src = &urlSource{att: tc.att, served: tc.served}
		}
		if got := lf.upload().ContentType; got != tc.want {
			t.Errorf("%s: content type %q, want %q", tc.att.Filename, got, tc.want)
		}
	}
}
