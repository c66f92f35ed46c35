package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"mime"
	"path"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxTitleLen is Confluence's limit on page titles, in the UTF-16 code
// units Java counts: an emoji takes two.
const MaxTitleLen = 255

// footerMarker starts the footer by which retropub recognises its own
// pages; the report id follows it, then the closing tag.
const footerMarker = "retropub report id: "

// PageTitle is the title Confluence will store: characters XML cannot carry
// dropped, line breaks and tabs made spaces, trimmed (Confluence trims) and
// cut to 255 UTF-16 units on a character boundary.
func PageTitle(title string) string {
	return strings.TrimSpace(cutUTF16(cleanTitle(title), MaxTitleLen))
}

// cleanTitle is title as Confluence would store it, before the length cut.
func cleanTitle(title string) string {
	t := strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return ' '
		case !xmlChar(r):
			return -1
		}
		return r
	}, title)
	return strings.TrimSpace(t)
}

// titleWithSuffix is title + " (suffix)" within the title limit: the title
// is shortened, never the suffix that makes it unique.
func titleWithSuffix(title, suffix string) string {
	s := " (" + PageTitle(suffix) + ")"
	head := cutUTF16(PageTitle(title), MaxTitleLen-utf16Len(s))
	return PageTitle(strings.TrimSpace(head) + s)
}

// cutUTF16 returns the longest prefix of s of at most n UTF-16 units.
func cutUTF16(s string, n int) string {
	units := 0
	for i, r := range s {
		units += utf16.RuneLen(r)
		if units > n {
			return s[:i]
		}
	}
	return s
}

func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// OwnsPage reports whether a storage body carries this report's footer.
func OwnsPage(body, reportID string) bool {
	return strings.Contains(body, footerMarker+escape(reportID)+"<")
}

// RenderPage renders the report into Confluence storage format. The output
// is a function of the report's content only (no revision, time or event
// id), so its hash tells whether the page must be written. Every string
// from the payload goes through escape: the body is well-formed XML with
// numeric character references only, whatever people typed.
func RenderPage(p *PublishPayload) string {
	r := &p.Report
	var b strings.Builder
	renderHeader(&b, r)
	renderSummary(&b, r.Summary)
	for _, s := range r.Sections {
		renderSection(&b, s)
	}
	if r.Health != nil && len(r.Health.Dimensions) > 0 {
		renderHealth(&b, r.Health.Dimensions)
	}
	renderActions(&b, r.Actions)
	renderAttachments(&b, p.Attachments)
	b.WriteString("<hr/>\n<p><sub>Published by retropub from the team's meeting. " + footerMarker + escape(r.ID) + "</sub></p>\n")
	return b.String()
}

// renderHeader writes the report's facts as a Page Properties (details)
// table, so Confluence's Page Properties Report can list every retro.
func renderHeader(b *strings.Builder, r *Report) {
	kind := "Retrospective"
	if r.Kind == KindHealthCheck {
		kind = "Health check"
	}
	row := func(name, value string) {
		if value != "" {
			b.WriteString("<tr><th>" + name + "</th><td>" + value + "</td></tr>\n")
		}
	}
	b.WriteString("<ac:structured-macro ac:name=\"details\"><ac:rich-text-body><table><tbody>\n")
	row("Type", kind)
	row("Team", escape(strings.TrimSpace(r.Team)))
	if d := heldDate(r.HeldAt); d != "" {
		row("Date", dateElem(d))
	}
	row("Facilitator", escape(strings.TrimSpace(r.Facilitator)))
	var people []string
	for _, name := range r.Participants {
		if n := strings.TrimSpace(name); n != "" {
			people = append(people, escape(n))
		}
	}
	row("Participants", strings.Join(people, ", "))
	if r.Link != "" {
		row("Meeting", `<a href="`+escape(r.Link)+`">Open in the meeting app</a>`)
	}
	b.WriteString("</tbody></table></ac:rich-text-body></ac:structured-macro>\n")
}

// dateElem is Confluence's storage form of a date (shown as a date chip).
func dateElem(yyyymmdd string) string { return `<time datetime="` + escape(yyyymmdd) + `"/>` }

func renderSummary(b *strings.Builder, summary string) {
	summary = strings.TrimSpace(strings.ReplaceAll(summary, "\r\n", "\n"))
	if summary == "" {
		return
	}
	b.WriteString("<h2>Summary</h2>\n")
	for _, para := range strings.Split(summary, "\n\n") {
		if para = strings.TrimSpace(para); para != "" {
			b.WriteString("<p>" + escapeLines(para) + "</p>\n")
		}
	}
}

// itemGroup is the items of one section that share a group.
type itemGroup struct {
	name  string
	votes int
	items []Item
}

// groupItems groups a section's items: named groups by total votes, most
// first (ties keep the order they first appear in), ungrouped items last;
// inside a group, most votes first. Sorting is stable, so the order is a
// function of the input alone.
func groupItems(items []Item) []itemGroup {
	var groups []itemGroup
	index := map[string]int{}
	for _, it := range items {
		if strings.TrimSpace(it.Text) == "" {
			continue
		}
		name := strings.TrimSpace(it.Group)
		i, ok := index[name]
		if !ok {
			i = len(groups)
			index[name] = i
			groups = append(groups, itemGroup{name: name})
		}
		groups[i].votes += it.Votes
		groups[i].items = append(groups[i].items, it)
	}
	sort.SliceStable(groups, func(i, j int) bool {
		gi, gj := groups[i], groups[j]
		if (gi.name == "") != (gj.name == "") {
			return gj.name == ""
		}
		return gi.votes > gj.votes
	})
	for _, g := range groups {
		sort.SliceStable(g.items, func(i, j int) bool { return g.items[i].Votes > g.items[j].Votes })
	}
	return groups
}

func renderSection(b *strings.Builder, s Section) {
	name := strings.TrimSpace(s.Name)
	if name == "" {
		name = "Untitled section"
	}
	b.WriteString("<h2>" + escape(name) + "</h2>\n")
	groups := groupItems(s.Items)
	if len(groups) == 0 {
		b.WriteString("<p><em>No items.</em></p>\n")
		return
	}
	headed := len(groups) > 1 || groups[0].name != ""
	for _, g := range groups {
		if headed {
			title := g.name
			if title == "" {
				title = "Other"
			}
			b.WriteString("<h3>" + escape(title) + votesNote(g.votes) + "</h3>\n")
		}
		b.WriteString("<ul>\n")
		for _, it := range g.items {
			b.WriteString("<li>" + escapeLines(it.Text) + votesNote(it.Votes) + "</li>\n")
		}
		b.WriteString("</ul>\n")
	}
}

func votesNote(n int) string {
	switch n {
	case 0:
		return ""
	case 1, -1:
		return " <em>(" + strconv.Itoa(n) + " vote)</em>"
	}
	return " <em>(" + strconv.Itoa(n) + " votes)</em>"
}

func renderHealth(b *strings.Builder, dims []Dimension) {
	b.WriteString("<h2>Health</h2>\n<table><tbody>\n<tr><th>Dimension</th><th>Score</th><th>Trend</th><th>Status</th><th>Comments</th></tr>\n")
	for _, d := range dims {
		score := num(d.Score)
		if d.Scale > 0 {
			score += " / " + num(d.Scale)
		}
		b.WriteString("<tr><td><strong>" + escape(d.Name) + "</strong></td><td>" + score + "</td><td>" + trend(d) +
			"</td><td>" + statusMacro(d.Rating) + "</td><td>" + comments(d.Comments) + "</td></tr>\n")
	}
	b.WriteString("</tbody></table>\n")
}

// trend compares a score with the previous check's, to two decimals.
func trend(d Dimension) string {
	if d.Previous == nil {
		return "<em>new</em>"
	}
	delta := math.Round((d.Score-*d.Previous)*100) / 100
	was := " (was " + num(*d.Previous) + ")"
	switch {
	case delta > 0:
		return "▲ +" + num(delta) + was
	case delta < 0:
		return "▼ −" + num(-delta) + was
	}
	return "▬ no change" + was
}

func comments(cs []string) string {
	var items []string
	for _, c := range cs {
		if c = strings.TrimSpace(c); c != "" {
			items = append(items, escapeLines(c))
		}
	}
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return "<ul><li>" + strings.Join(items, "</li><li>") + "</li></ul>"
}

// lozengeColours maps a rating to the status macro's colour names.
var lozengeColours = map[string]string{
	"green": "Green", "yellow": "Yellow", "amber": "Yellow", "red": "Red", "blue": "Blue", "grey": "Grey",
}

// statusMacro is the status lozenge for a rating; no rating is a grey
// "NOT RATED".
func statusMacro(rating string) string {
	rating = strings.ToLower(strings.TrimSpace(rating))
	colour, title := lozengeColours[rating], strings.ToUpper(rating)
	if colour == "" {
		colour = "Grey"
	}
	if title == "" {
		title = "NOT RATED"
	}
	return `<ac:structured-macro ac:name="status"><ac:parameter ac:name="colour">` + colour +
		`</ac:parameter><ac:parameter ac:name="title">` + escape(title) + `</ac:parameter></ac:structured-macro>`
}

// renderActions writes a Confluence task list. Assignees are text (a
// mention needs an Atlassian account id we do not have); due dates are
// <time> elements, which Confluence shows as date chips.
func renderActions(b *strings.Builder, actions []Action) {
	if len(actions) == 0 {
		return
	}
	b.WriteString("<h2>Action items</h2>\n<ac:task-list>\n")
	for i, a := range actions {
		status := "incomplete"
		if a.Done {
			status = "complete"
		}
		body := escapeLines(a.Text)
		if who := strings.TrimSpace(a.Assignee); who != "" {
			body += " · <strong>" + escape(who) + "</strong>"
		}
		if a.Due != "" {
			body += " · due " + dateElem(a.Due)
		}
		b.WriteString("<ac:task><ac:task-id>" + strconv.Itoa(i+1) + "</ac:task-id><ac:task-status>" + status +
			"</ac:task-status><ac:task-body>" + body + "</ac:task-body></ac:task>\n")
	}
	b.WriteString("</ac:task-list>\n")
}

// renderAttachments embeds images, shows PDFs with the view-file macro and
// links every other file.
func renderAttachments(b *strings.Builder, atts []Attachment) {
	if len(atts) == 0 {
		return
	}
	b.WriteString("<h2>Attachments</h2>\n")
	var others []string
	for _, a := range atts {
		name := escape(a.Filename)
		ref := `<ri:attachment ri:filename="` + name + `"/>`
		switch mt := mediaType(a); {
		case strings.HasPrefix(mt, "image/"):
			b.WriteString(`<p><ac:image ac:alt="` + name + `" ac:title="` + name + `">` + ref + "</ac:image></p>\n")
		case mt == "application/pdf":
			b.WriteString(`<ac:structured-macro ac:name="view-file"><ac:parameter ac:name="name">` + ref +
				`</ac:parameter><ac:parameter ac:name="height">250</ac:parameter></ac:structured-macro>` + "\n")
		default:
			others = append(others, "<li><ac:link>"+ref+"</ac:link></li>\n")
		}
	}
	if len(others) > 0 {
		b.WriteString("<ul>\n" + strings.Join(others, "") + "</ul>\n")
	}
}

// extensionTypes is a fixed table, not the system's MIME database, so the
// page does not depend on the machine that renders it.
var extensionTypes = map[string]string{
	".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
	".svg": "image/svg+xml", ".webp": "image/webp", ".pdf": "application/pdf",
}

// mediaType is the attachment's declared media type without parameters,
// or the one its extension implies.
func mediaType(a Attachment) string {
	if mt, _, err := mime.ParseMediaType(a.ContentType); err == nil {
		return mt
	}
	return extensionTypes[strings.ToLower(path.Ext(a.Filename))]
}

func heldDate(heldAt string) string {
	if len(heldAt) >= 10 {
		return heldAt[:10]
	}
	return heldAt
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// BodyHash is the hash the mapping keeps to skip unchanged pages.
func BodyHash(title, body string) string {
	h := sha256.New()
	h.Write([]byte(title))
	h.Write([]byte{0})
	h.Write([]byte(body))
	return hex.EncodeToString(h.Sum(nil))
}

// escape makes text safe inside storage-format elements and attributes:
// the five XML escapes as numeric references (Confluence knows no HTML
// entities), and characters XML cannot carry (NUL, U+FFFE, lone
// surrogates…) dropped.
func escape(s string) string {
	s = cleanText(s)
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch r {
		case '&':
			b.WriteString("&#38;")
		case '<':
			b.WriteString("&#60;")
		case '>':
			b.WriteString("&#62;")
		case '"':
			b.WriteString("&#34;")
		case '\'':
			b.WriteString("&#39;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// escapeLines escapes multi-line text and keeps its line breaks.
func escapeLines(s string) string {
	s = strings.ReplaceAll(strings.TrimSpace(s), "\r\n", "\n")
	return strings.ReplaceAll(escape(s), "\n", "<br/>")
}

// cleanText drops characters outside the XML 1.0 Char production.
func cleanText(s string) string {
	ok := true
	for _, r := range s {
		if !xmlChar(r) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	return strings.Map(func(r rune) rune {
		if xmlChar(r) {
			return r
		}
		return -1
	}, s)
}

func xmlChar(r rune) bool {
	switch {
	case r == utf8.RuneError:
		return false
	case r == 0x09 || r == 0x0A || r == 0x0D:
		return true
	case r >= 0x20 && r <= 0xD7FF:
		return true
	case r >= 0xE000 && r <= 0xFFFD:
		return true
	case r >= 0x10000 && r <= 0x10FFFF:
		return true
	}
	return false
}

// maxPageRequest is Confluence Cloud's cap on a page create or update
// request (5 MB); the JSON envelope around the body needs a little of it.
const (
	maxPageRequest = 5 << 20
	pageEnvelope   = 4 << 10
)

// checkBodySize refuses a body Confluence would answer with 413, saying
// what to do, before any request is made. The body is measured as the
// client sends it: JSON-encoded, where "&" becomes "\u0026".
func checkBodySize(body string) error {
	enc, err := json.Marshal(body)
	if err != nil {
		return err
	}
	if n := len(enc) + pageEnvelope; n > maxPageRequest {
		return permanent(fmt.Errorf("the rendered page is %d bytes once encoded, more than Confluence's 5 MB page limit: shorten the report or move content into attachments", n))
	}
	return nil
}
