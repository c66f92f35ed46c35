package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxTitleLen is Confluence's limit on page titles.
const MaxTitleLen = 255

// footerMarker starts the footer by which retropub recognises its own
// pages; the report id follows it.
const footerMarker = "retropub report id: "

// PageTitle is the title Confluence will store: trimmed (Confluence trims)
// and cut to 255 characters on a rune boundary.
func PageTitle(title string) string {
	t := strings.TrimSpace(cleanText(title))
	if utf8.RuneCountInString(t) > MaxTitleLen {
		t = strings.TrimSpace(string([]rune(t)[:MaxTitleLen]))
	}
	return t
}

// OwnsPage reports whether a storage body carries this report's footer.
func OwnsPage(body, reportID string) bool {
	return strings.Contains(body, footerMarker+escape(reportID)+"<")
}

// RenderPage renders the report into Confluence storage format. The output
// is a function of the report's content only (no revision, time or event
// id), so its hash tells whether the page must be written.
func RenderPage(p *PublishPayload) string {
	r := &p.Report
	var b strings.Builder
	b.WriteString("<p>")
	var meta []string
	if r.Team != "" {
		meta = append(meta, "<strong>Team:</strong> "+escape(r.Team))
	}
	if d := heldDate(r.HeldAt); d != "" {
		meta = append(meta, "<strong>Date:</strong> "+escape(d))
	}
	if r.Facilitator != "" {
		meta = append(meta, "<strong>Facilitator:</strong> "+escape(r.Facilitator))
	}
	if len(r.Participants) > 0 {
		meta = append(meta, "<strong>Participants:</strong> "+escape(strings.Join(r.Participants, ", ")))
	}
	if r.Link != "" {
		meta = append(meta, `<a href="`+escape(r.Link)+`">Open in the meeting app</a>`)
	}
	b.WriteString(strings.Join(meta, "<br/>"))
	b.WriteString("</p>")
	if r.Summary != "" {
		b.WriteString("<h2>Summary</h2>")
		for _, para := range strings.Split(r.Summary, "\n\n") {
			b.WriteString("<p>" + escapeLines(para) + "</p>")
		}
	}
	for _, s := range r.Sections {
		renderSection(&b, s)
	}
	if r.Health != nil && len(r.Health.Dimensions) > 0 {
		renderHealth(&b, r.Health.Dimensions)
	}
	if len(r.Actions) > 0 {
		b.WriteString("<h2>Action items</h2><ac:task-list>")
		for i, a := range r.Actions {
			status := "incomplete"
			if a.Done {
				status = "complete"
			}
			text := escape(a.Text)
			if a.Assignee != "" {
				text += " (" + escape(a.Assignee) + ")"
			}
			if a.Due != "" {
				text += " due " + escape(a.Due)
			}
			fmt.Fprintf(&b, "<ac:task><ac:task-id>%d</ac:task-id><ac:task-status>%s</ac:task-status><ac:task-body>%s</ac:task-body></ac:task>", i+1, status, text)
		}
		b.WriteString("</ac:task-list>")
	}
	renderAttachments(&b, p.Attachments)
	b.WriteString(`<hr/><p><sub>Published by retropub. ` + footerMarker + escape(r.ID) + `</sub></p>`)
	return b.String()
}

func renderSection(b *strings.Builder, s Section) {
	b.WriteString("<h2>" + escape(s.Name) + "</h2>")
	if len(s.Items) == 0 {
		b.WriteString("<p><em>No items.</em></p>")
		return
	}
	// Group, then most votes first; stable so equal items keep their order.
	items := append([]Item(nil), s.Items...)
	sort.SliceStable(items, func(i, j int) bool {
		if items[i].Group != items[j].Group {
			return items[i].Group < items[j].Group
		}
		return items[i].Votes > items[j].Votes
	})
	group := "\x00"
	open := false
	for _, it := range items {
		if it.Group != group {
			if open {
				b.WriteString("</ul>")
			}
			group = it.Group
			if group != "" {
				b.WriteString("<h3>" + escape(group) + "</h3>")
			}
			b.WriteString("<ul>")
			open = true
		}
		b.WriteString("<li>" + escape(it.Text))
		if it.Votes > 0 {
			fmt.Fprintf(b, " <em>(%d votes)</em>", it.Votes)
		}
		b.WriteString("</li>")
	}
	b.WriteString("</ul>")
}

func renderHealth(b *strings.Builder, dims []Dimension) {
	b.WriteString("<h2>Health</h2><table><tbody><tr><th>Dimension</th><th>Score</th><th>Trend</th><th>Status</th><th>Comments</th></tr>")
	for _, d := range dims {
		score := num(d.Score)
		if d.Scale > 0 {
			score += " / " + num(d.Scale)
		}
		trend := "–"
		if d.Previous != nil {
			switch {
			case d.Score > *d.Previous:
				trend = "▲ from " + num(*d.Previous)
			case d.Score < *d.Previous:
				trend = "▼ from " + num(*d.Previous)
			default:
				trend = "= " + num(*d.Previous)
			}
		}
		b.WriteString("<tr><td>" + escape(d.Name) + "</td><td>" + score + "</td><td>" + escape(trend) + "</td><td>" + statusMacro(d.Rating) + "</td><td>")
		for i, c := range d.Comments {
			if i > 0 {
				b.WriteString("<br/>")
			}
			b.WriteString(escape(c))
		}
		b.WriteString("</td></tr>")
	}
	b.WriteString("</tbody></table>")
}

func statusMacro(rating string) string {
	colour := map[string]string{"green": "Green", "yellow": "Yellow", "amber": "Yellow", "red": "Red", "blue": "Blue"}[strings.ToLower(rating)]
	if colour == "" {
		colour = "Grey"
	}
	title := strings.ToUpper(rating)
	return `<ac:structured-macro ac:name="status"><ac:parameter ac:name="colour">` + colour +
		`</ac:parameter><ac:parameter ac:name="title">` + escape(title) + `</ac:parameter></ac:structured-macro>`
}

func renderAttachments(b *strings.Builder, atts []Attachment) {
	if len(atts) == 0 {
		return
	}
	b.WriteString("<h2>Attachments</h2>")
	for _, a := range atts {
		name := escape(a.Filename)
		switch {
		case strings.HasPrefix(a.ContentType, "image/"):
			b.WriteString(`<p><ac:image ac:alt="` + name + `"><ri:attachment ri:filename="` + name + `"/></ac:image></p>`)
		case a.ContentType == "application/pdf":
			b.WriteString(`<ac:structured-macro ac:name="view-file"><ac:parameter ac:name="name"><ri:attachment ri:filename="` + name + `"/></ac:parameter><ac:parameter ac:name="height">250</ac:parameter></ac:structured-macro>`)
		default:
			b.WriteString(`<p><ac:link><ri:attachment ri:filename="` + name + `"/></ac:link></p>`)
		}
	}
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
// the five XML escapes as numeric references, and characters XML cannot
// carry (NUL, U+FFFE, lone surrogates…) dropped.
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

func escapeLines(s string) string {
	return strings.ReplaceAll(escape(strings.TrimSpace(s)), "\n", "<br/>")
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
