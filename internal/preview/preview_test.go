package preview

import (
	"net/url"
	"os"
	"strings"
	"testing"
)

func TestStorageToHTMLShowsWhatConfluenceShows(t *testing.T) {
	for name, want := range map[string][]string{
		"retrospective": {
			`<div class=details><table><tbody>`, `<span class=date>27 Nov 2026</span>`,
			`<ul class=tasks><li><input type=checkbox disabled> <span>Pin Go version in CI`,
			`<li><input type=checkbox disabled checked> <span>Tune alert thresholds`,
			`<img src="/att/votes.png" alt="votes.png">`,
			`<a class=file-card href="/att/sprint-42.pdf">`,
			`<a class=file-link href="/att/raw-votes.csv">`,
			`<a href="https://app.example.com/r/8f2c?tab=board&amp;view=all">`,
		},
		"health_check": {`<span class="lozenge lozenge-green">GREEN</span>`, `<span class="lozenge lozenge-yellow">AMBER</span>`, `<span class="lozenge lozenge-grey">NOT RATED</span>`},
		"hostile":      {`&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;`, `<img src="/att/a&amp;b%20%3C%22x%22%3E.png"`},
	} {
		body, err := os.ReadFile("../../jobs/testdata/" + name + ".golden.xhtml")
		if err != nil {
			t.Fatal(err)
		}
		got, err := storageToHTML(string(body), func(f string) string { return "/att/" + url.PathEscape(f) })
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: preview lacks %s", name, w)
			}
		}
		for _, bad := range []string{"<ac:", "<ri:", "<script"} {
			if strings.Contains(got, bad) {
				t.Errorf("%s: preview contains %s", name, bad)
			}
		}
	}
}
