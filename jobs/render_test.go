package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"retropub/confluence"
	"retropub/confluence/confluencetest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenCases are testdata/<case>.input.json rendered to <case>.golden.xhtml.
var goldenCases = []string{"retrospective", "health_check", "hostile"}

func readPayload(t testing.TB, name string) *PublishPayload {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name+".input.json"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := DecodePublishPayload(data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return p
}

// storageNS declares the namespaces Confluence binds implicitly.
const storageNS = `<ac:confluence xmlns:ac="http://atlassian.com/content" xmlns:ri="http://atlassian.com/resource/identifier">`

var namedEntity = regexp.MustCompile(`&[A-Za-z][A-Za-z0-9]*;`)

// checkStorage fails unless body is well-formed XML inside the storage
// namespaces and uses numeric character references only.
func checkStorage(body string) error {
	if m := namedEntity.FindString(body); m != "" {
		return fmt.Errorf("named entity %s", m)
	}
	d := xml.NewDecoder(strings.NewReader(storageNS + body + "</ac:confluence>"))
	d.Strict = true
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			line, col := d.InputPos()
			return fmt.Errorf("line %d col %d: %w", line, col, err)
		}
	}
}

func TestRenderGolden(t *testing.T) {
	for _, name := range goldenCases {
		t.Run(name, func(t *testing.T) {
			got := RenderPage(readPayload(t, name))
			path := filepath.Join("testdata", name+".golden.xhtml")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./jobs -run TestRenderGolden -update)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs from the rendering (-update rewrites it):\n%s", path, firstDiff(string(want), got))
			}
			if err := checkStorage(got); err != nil {
				t.Errorf("not well-formed storage format: %v", err)
			}
		})
	}
}

func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return fmt.Sprintf("line %d\nwant: %s\ngot:  %s", i+1, w, g)
		}
	}
	return "(no line differs)"
}

// The committed golden pages are accepted by the fake Confluence, which
// parses storage format as strictly as Confluence does (400 otherwise).
func TestGoldenPagesAcceptedByFakeConfluence(t *testing.T) {
	fake := confluencetest.New(confluencetest.Options{})
	fake.Start()
	t.Cleanup(fake.Close)
	spaceID, home := fake.AddSpace("ENG", "Engineering")
	fake.AddAccessToken("golden-token")
	_, lo, _ := net.ParseCIDR("127.0.0.0/8") // the fake listens on loopback
	c, err := confluence.NewCloud(fake.URL(), fake.CloudID(), confluence.WithAuthorizer(confluence.BearerToken("golden-token")),
		confluence.WithHTTPClient(confluence.NewHTTPClient(10*time.Second, 2, confluence.AllowCIDRs(lo))))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range goldenCases {
		body, err := os.ReadFile(filepath.Join("testdata", name+".golden.xhtml"))
		if err != nil {
			t.Fatal(err)
		}
		title := PageTitle(readPayload(t, name).Report.Title)
		pg, err := c.CreatePage(context.Background(), confluence.NewPage{SpaceID: spaceID, ParentID: home, Title: title, Body: string(body)})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if pg.Title != title {
			t.Errorf("%s: stored title %q, want %q", name, pg.Title, title)
		}
	}
}

func TestRenderRetrospectiveStructure(t *testing.T) {
	body := RenderPage(readPayload(t, "retrospective"))
	// Named groups by total votes (Delivery 6, Tooling 5), ungrouped last;
	// inside a group, most votes first.
	order := []string{"<h3>Delivery <em>(6 votes)</em>", "Demo went smoothly", "Shipped the export API",
		"<h3>Tooling <em>(5 votes)</em>", "CI is faster <em>(4 votes)</em>", "Cached module downloads <em>(1 vote)</em>",
		"<h3>Other", "Pairing on the parser", "<h2>To improve</h2>", "Pager noise at night", "Flaky e2e tests<br/>(three reruns", "Review queue"}
	at := 0
	for _, s := range order {
		i := strings.Index(body[at:], s)
		if i < 0 {
			t.Fatalf("%q missing or out of order in\n%s", s, body)
		}
		at += i + len(s)
	}
	for _, want := range []string{
		`<ac:structured-macro ac:name="details">`, `<tr><th>Date</th><td><time datetime="2026-11-27"/></td></tr>`,
		`<tr><th>Participants</th><td>Dana, Lee, Sam, Ana María</td></tr>`,
		`<a href="https://app.example.com/r/8f2c?tab=board&#38;view=all">`,
		`<h3>`, `<p><em>No items.</em></p>`,
		`<ac:task><ac:task-id>1</ac:task-id><ac:task-status>incomplete</ac:task-status><ac:task-body>Pin Go version in CI · <strong>Lee</strong> · due <time datetime="2026-12-05"/></ac:task-body></ac:task>`,
		`<ac:task-id>2</ac:task-id><ac:task-status>complete</ac:task-status>`,
		`<ac:image ac:alt="votes.png" ac:title="votes.png"><ri:attachment ri:filename="votes.png"/></ac:image>`,
		`<ac:structured-macro ac:name="view-file"><ac:parameter ac:name="name"><ri:attachment ri:filename="sprint-42.pdf"/></ac:parameter>`,
		`<li><ac:link><ri:attachment ri:filename="raw-votes.csv"/></ac:link></li>`,
		`retropub report id: retro-8f2c</sub>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %s", want)
		}
	}
	for _, leak := range []string{"evt-golden-retro", "revision"} {
		if strings.Contains(body, leak) {
			t.Errorf("body depends on %q, which is not content", leak)
		}
	}
}

func TestRenderHealthCheckStructure(t *testing.T) {
	body := RenderPage(readPayload(t, "health_check"))
	for _, want := range []string{
		`<tr><th>Type</th><td>Health check</td></tr>`,
		`<tr><th>Date</th><td><time datetime="2026-11-28"/></td></tr>`,
		`<td><strong>Speed</strong></td><td>3.4 / 5</td><td>▲ +0.3 (was 3.1)</td><td><ac:structured-macro ac:name="status"><ac:parameter ac:name="colour">Green</ac:parameter><ac:parameter ac:name="title">GREEN</ac:parameter></ac:structured-macro></td><td><ul><li>Deploys are quick</li><li>Builds under 5 minutes</li></ul></td>`,
		`<td>▼ −1.5 (was 4)</td>`, `<ac:parameter ac:name="colour">Red</ac:parameter>`,
		`<td>▬ no change (was 3)</td>`, `<ac:parameter ac:name="colour">Yellow</ac:parameter><ac:parameter ac:name="title">AMBER</ac:parameter>`,
		`<td>4.2 / 5</td><td><em>new</em></td>`,
		`<ac:parameter ac:name="colour">Grey</ac:parameter><ac:parameter ac:name="title">NOT RATED</ac:parameter>`,
		`<ac:task-list>`, `retropub report id: health-31aa</sub>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %s", want)
		}
	}
	if !OwnsPage(body, "health-31aa") || OwnsPage(body, "health-31a") || OwnsPage(body, "retro-8f2c") {
		t.Error("OwnsPage does not recognise exactly this report's footer")
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	for _, name := range goldenCases {
		p := readPayload(t, name)
		first := RenderPage(p)
		p.EventID, p.Report.Revision = "another-event", p.Report.Revision+7
		if again := RenderPage(p); again != first {
			t.Errorf("%s: event id or revision changed the page", name)
		}
	}
}

// Hostile content: escaped, never a named entity, characters XML cannot
// carry removed, everything else (emoji, right-to-left text) kept.
func TestRenderHostileContent(t *testing.T) {
	p := readPayload(t, "hostile")
	body := RenderPage(p)
	if err := checkStorage(body); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"<script>", "&nbsp;", "\x00", "\ufffe", "\x07", "]]>"} {
		if strings.Contains(body, bad) {
			t.Errorf("body contains %q", bad)
		}
	}
	for _, want := range []string{"&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62;", "]]&#62;", "&#38;nbsp;", "🎉🚀", "שלום עולם", "مرحبا", "\u202edir\u202c",
		`ri:filename="a&#38;b &#60;&#34;x&#34;&#62;.png"`, "<h2>Untitled section</h2>",
		`<ac:structured-macro ac:name="view-file"><ac:parameter ac:name="name"><ri:attachment ri:filename="]]&#62;.pdf"/>`} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q", want)
		}
	}
}

func TestRenderTenThousandItems(t *testing.T) {
	p := manyItems(10000)
	body := RenderPage(p)
	if err := checkStorage(body); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(body, "<li>"); n != 10000 {
		t.Fatalf("%d items rendered", n)
	}
	if err := checkBodySize(body); err != nil {
		t.Fatalf("10,000 items do not fit a page: %v", err)
	}
}

func manyItems(n int) *PublishPayload {
	p := &PublishPayload{Schema: 1, IntegrationID: "acme-cloud", Target: Target{SpaceKey: "ENG"},
		Report: Report{ID: "many", Revision: 1, Kind: KindRetrospective, Title: "Many items"}}
	items := make([]Item, n)
	for i := range items {
		items[i] = Item{Text: fmt.Sprintf("item <%d> & 🎉 שלום", i), Votes: i % 7, Group: fmt.Sprintf("group %d", i%13)}
	}
	p.Report.Sections = []Section{{Name: "Everything", Items: items}}
	return p
}

// A body Confluence would refuse with 413 is a permanent error that says
// what to do, found before any request.
func TestCheckBodySizeRefusesOversizedPage(t *testing.T) {
	p := manyItems(1)
	p.Report.Summary = strings.Repeat("<", 600_000) // 600 kB typed, 6 MB as sent
	err := checkBodySize(RenderPage(p))
	var pe *PermanentError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "5 MB page limit") {
		t.Fatalf("err = %v", err)
	}
}

func TestPageTitle(t *testing.T) {
	long := strings.Repeat("x", 300)
	emoji := strings.Repeat("🎉", 200) // 400 UTF-16 units
	for _, tc := range []struct{ in, want string }{
		{"  Sprint 42  ", "Sprint 42"},
		{"a\tb\nc\r\nd", "a b c  d"},
		{"nul\x00 and \ufffe gone", "nul and  gone"},
		{long, long[:255]},
		{emoji, strings.Repeat("🎉", 127)},
		{strings.Repeat("a", 254) + " b", strings.Repeat("a", 254)},
	} {
		if got := PageTitle(tc.in); got != tc.want {
			t.Errorf("PageTitle(%.20q…) = %.40q… (%d units), want %.40q…", tc.in, got, utf16Len(got), tc.want)
		}
	}
}

func TestTitleWithSuffixKeepsTheSuffix(t *testing.T) {
	for _, title := range []string{strings.Repeat("x", 300), strings.Repeat("🎉", 200), "Short"} {
		got := titleWithSuffix(title, "2026-11-27")
		if !strings.HasSuffix(got, " (2026-11-27)") || len(utf16.Encode([]rune(got))) > MaxTitleLen {
			t.Errorf("titleWithSuffix(%.10q…) = %q (%d units)", title, got, utf16Len(got))
		}
	}
}

// disambiguate tries the title, then with the date, then with the report id.
func TestDisambiguateOrder(t *testing.T) {
	r := &publishRun{p: readPayload(t, "retrospective")}
	r.page.title = PageTitle(r.p.Report.Title)
	got := []string{r.disambiguate(0), r.disambiguate(1), r.disambiguate(2)}
	want := []string{"Sprint 42 Retrospective", "Sprint 42 Retrospective (2026-11-27)", "Sprint 42 Retrospective (retro-8f2c)"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("disambiguate(%d) = %q, want %q", i, got[i], want[i])
		}
	}
}

// addGoldenSeeds seeds a fuzz test with the golden inputs.
func addGoldenSeeds(f *testing.F) {
	for _, name := range goldenCases {
		data, err := os.ReadFile(filepath.Join("testdata", name+".input.json"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

// FuzzRenderPage: every payload that decodes renders to well-formed
// storage format with numeric references only, the same bytes every time,
// our footer, and a title Confluence accepts.
func FuzzRenderPage(f *testing.F) {
	addGoldenSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodePublishPayload(data)
		if err != nil {
			return
		}
		body := RenderPage(p)
		if err := checkStorage(body); err != nil {
			t.Fatalf("%v\n%s", err, body)
		}
		if RenderPage(p) != body {
			t.Fatal("two renderings differ")
		}
		if !OwnsPage(body, p.Report.ID) {
			t.Fatal("footer not recognised")
		}
		title := PageTitle(p.Report.Title)
		if utf16Len(title) > MaxTitleLen || title != strings.TrimSpace(title) || strings.ContainsAny(title, "\x00\t\n\r") {
			t.Fatalf("title %q", title)
		}
	})
}

// FuzzDecodePublishPayload: any input either decodes into a payload that
// passes Validate or is refused with a PayloadError naming a field; never a
// panic, and the same answer every time.
func FuzzDecodePublishPayload(f *testing.F) {
	addGoldenSeeds(f)
	f.Add([]byte(`{"schema":1,"report":{"sections":[{"items":[{"votes":1e400}]}]}}`))
	f.Add([]byte("{\"schema\":1,\"report\":{\"title\":\"\\ud800\"}}  {}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodePublishPayload(data)
		_, err2 := DecodePublishPayload(data)
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("two decodings differ: %v / %v", err, err2)
		}
		if err != nil {
			var pe *PayloadError
			if !errors.As(err, &pe) || pe.Field == "" || pe.Problem == "" {
				t.Fatalf("refusal is not a PayloadError naming a field: %T %v", err, err)
			}
			if bytes.ContainsAny([]byte(err.Error()), "\x00\r\n") {
				t.Fatalf("refusal message carries raw control characters: %q", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("decoded payload does not validate: %v", err)
		}
		if !strings.HasPrefix(p.TaskID(), TypePublishReport+":"+p.IntegrationID+":"+p.Report.ID+":") {
			t.Fatalf("task id %q", p.TaskID())
		}
	})
}

func BenchmarkRenderPage(b *testing.B) {
	cases := map[string]*PublishPayload{"items=10000": manyItems(10000)}
	for _, name := range goldenCases {
		cases[name] = readPayload(b, name)
	}
	for _, name := range append(goldenCases, "items=10000") {
		p := cases[name]
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(RenderPage(p))))
			b.ReportAllocs()
			for b.Loop() {
				RenderPage(p)
			}
		})
	}
}

func BenchmarkDecodePublishPayload(b *testing.B) {
	inputs := map[string][]byte{}
	for _, name := range goldenCases {
		data, err := os.ReadFile(filepath.Join("testdata", name+".input.json"))
		if err != nil {
			b.Fatal(err)
		}
		inputs[name] = data
	}
	big, err := json.Marshal(manyItems(10000))
	if err != nil {
		b.Fatal(err)
	}
	inputs["items=10000"] = big
	for _, name := range append(goldenCases, "items=10000") {
		data := inputs[name]
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodePublishPayload(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
