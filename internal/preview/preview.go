// Package preview shows Confluence pages the way a browser shows them in
// Confluence: storage format turned into plain HTML, task lists as
// checkboxes, status macros as coloured lozenges, images from the stored
// attachments, the view-file macro as a file card. The demo serves it over
// the fake Confluence; it reads pages through Source and knows no fake.
package preview

import (
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"retropub/jobs"
)

const (
	nsAC = "http://atlassian.com/content"
	nsRI = "http://atlassian.com/resource/identifier"
)

// Page is a stored page as the preview needs it.
type Page struct {
	ID, ParentID, Title, Body string
	Version                   int
}

// File is an attachment's name and bytes.
type File struct {
	Name, MediaType string
	Data            []byte
}

// Source is where the pages are: in the demo, the fake Confluence.
type Source interface {
	Pages(space string) []Page
	Files(pageID string) []File
}

// Handler serves /preview (every page of space), /preview/{id} (one page,
// by page id or by the report id that owns it) and
// /preview/attachments/{page}/{file} (an attachment's bytes).
func Handler(src Source, space string) http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /preview", func(w http.ResponseWriter, _ *http.Request) {
		pages := src.Pages(space)
		writePreview(w, space, pages, pagePath(pages))
	})
	// {id} is a page id or a report id (stable across demo runs).
	m.HandleFunc("GET /preview/{id}", func(w http.ResponseWriter, r *http.Request) {
		pages := src.Pages(space)
		id := r.PathValue("id")
		for _, p := range pages {
			if p.ID == id || jobs.OwnsPage(p.Body, id) {
				writePreview(w, space, []Page{p}, pagePath(pages))
				return
			}
		}
		http.NotFound(w, r)
	})
	m.HandleFunc("GET /preview/attachments/{page}/{file}", func(w http.ResponseWriter, r *http.Request) {
		for _, f := range src.Files(r.PathValue("page")) {
			if f.Name == r.PathValue("file") {
				w.Header().Set("Content-Type", f.MediaType)
				_, _ = w.Write(f.Data)
				return
			}
		}
		http.NotFound(w, r)
	})
	return m
}

// pagePath returns each page's ancestors' titles, for the breadcrumb.
func pagePath(pages []Page) func(Page) []string {
	byID := map[string]Page{}
	for _, p := range pages {
		byID[p.ID] = p
	}
	return func(p Page) []string {
		var path []string
		for id := p.ParentID; id != ""; id = byID[id].ParentID {
			parent, ok := byID[id]
			if !ok || len(path) > 20 {
				break
			}
			path = append([]string{parent.Title}, path...)
		}
		return path
	}
}

func writePreview(w http.ResponseWriter, space string, pages []Page, path func(Page) []string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprint(w, "<!doctype html><html lang=en><meta charset=utf-8><title>retropub preview</title><style>"+previewCSS+"</style><body>")
	for _, p := range pages {
		body, err := storageToHTML(p.Body, func(file string) string {
			return "/preview/attachments/" + url.PathEscape(p.ID) + "/" + url.PathEscape(file)
		})
		if err != nil {
			body = "<p class=error>" + html.EscapeString(err.Error()) + "</p>"
		}
		crumbs := html.EscapeString(strings.Join(append([]string{space}, path(p)...), " / "))
		fmt.Fprintf(w, "<article><nav>%s</nav><h1><a href=\"/preview/%s\">%s</a></h1><div class=meta>version %d</div>%s</article>",
			crumbs, url.PathEscape(p.ID), html.EscapeString(p.Title), p.Version, body)
	}
	fmt.Fprint(w, "</body></html>")
}

// node is one element or text of a parsed storage body.
type node struct {
	name  xml.Name
	attrs []xml.Attr
	text  string // for text nodes (name.Local == "")
	kids  []*node
}

func (n *node) attr(space, local string) string {
	for _, a := range n.attrs {
		if a.Name.Space == space && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

func (n *node) child(space, local string) *node {
	for _, k := range n.kids {
		if k.name.Space == space && k.name.Local == local {
			return k
		}
	}
	return nil
}

// param returns a macro parameter's node.
func (n *node) param(name string) *node {
	for _, k := range n.kids {
		if k.name.Space == nsAC && k.name.Local == "parameter" && k.attr(nsAC, "name") == name {
			return k
		}
	}
	return nil
}

func (n *node) plainText() string {
	if n == nil {
		return ""
	}
	if n.name.Local == "" {
		return n.text
	}
	var b strings.Builder
	for _, k := range n.kids {
		b.WriteString(k.plainText())
	}
	return b.String()
}

// parseStorage parses a body the way Confluence does: XML, with the ac and
// ri namespaces bound implicitly.
func parseStorage(body string) (*node, error) {
	d := xml.NewDecoder(strings.NewReader(`<root xmlns:ac="` + nsAC + `" xmlns:ri="` + nsRI + `">` + body + `</root>`))
	d.Strict = true
	root := &node{}
	stack := []*node{root}
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("storage format: %w", err)
		}
		top := stack[len(stack)-1]
		switch t := tok.(type) {
		case xml.StartElement:
			n := &node{name: t.Name, attrs: t.Attr}
			top.kids = append(top.kids, n)
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			top.kids = append(top.kids, &node{text: string(t)})
		}
	}
	if len(root.kids) != 1 {
		return nil, errors.New("storage format: no root")
	}
	return root.kids[0], nil
}

// htmlTags are the storage-format HTML elements shown as they are (with no
// attributes but a link's href); others show their content only.
var htmlTags = map[string]bool{
	"p": true, "h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true, "ul": true, "ol": true, "li": true,
	"table": true, "tbody": true, "thead": true, "tr": true, "th": true, "td": true, "strong": true, "em": true, "b": true,
	"i": true, "u": true, "sub": true, "sup": true, "code": true, "pre": true, "blockquote": true, "span": true, "div": true,
}

func storageToHTML(body string, attachment func(file string) string) (string, error) {
	root, err := parseStorage(body)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	c := converter{b: &b, attachment: attachment}
	c.kids(root)
	return b.String(), nil
}

type converter struct {
	b          *strings.Builder
	attachment func(file string) string
}

func (c converter) kids(n *node) {
	for _, k := range n.kids {
		c.node(k)
	}
}

func (c converter) node(n *node) {
	switch {
	case n.name.Local == "":
		c.b.WriteString(html.EscapeString(n.text))
	case n.name.Space == nsAC:
		c.confluence(n)
	case n.name.Space != "":
		// ri: and other references outside a macro show nothing.
	case n.name.Local == "br" || n.name.Local == "hr":
		c.b.WriteString("<" + n.name.Local + ">")
	case n.name.Local == "a":
		href := n.attr("", "href")
		if u, err := url.Parse(href); err != nil || (u.Scheme != "https" && u.Scheme != "http") {
			href = "#"
		}
		c.b.WriteString(`<a href="` + html.EscapeString(href) + `">`)
		c.kids(n)
		c.b.WriteString("</a>")
	case n.name.Local == "time":
		c.b.WriteString(`<span class=date>` + html.EscapeString(showDate(n.attr("", "datetime"))) + `</span>`)
	case htmlTags[n.name.Local]:
		c.b.WriteString("<" + n.name.Local + ">")
		c.kids(n)
		c.b.WriteString("</" + n.name.Local + ">")
	default:
		c.kids(n)
	}
}

// confluence renders an ac: element.
func (c converter) confluence(n *node) {
	switch n.name.Local {
	case "structured-macro":
		c.macro(n)
	case "task-list":
		c.b.WriteString("<ul class=tasks>")
		for _, k := range n.kids {
			if k.name.Local == "task" {
				c.task(k)
			}
		}
		c.b.WriteString("</ul>")
	case "image":
		if src := c.resource(n); src != "" {
			c.b.WriteString(`<img src="` + html.EscapeString(src) + `" alt="` + html.EscapeString(n.attr(nsAC, "alt")) + `">`)
		}
	case "link":
		file := n.child(nsRI, "attachment")
		if file == nil {
			c.kids(n)
			return
		}
		name := file.attr(nsRI, "filename")
		c.b.WriteString(`<a class=file-link href="` + html.EscapeString(c.attachment(name)) + `">` + html.EscapeString(name) + `</a>`)
	case "rich-text-body", "link-body":
		c.kids(n)
	case "plain-text-body", "plain-text-link-body":
		c.b.WriteString(html.EscapeString(n.plainText()))
	}
}

// resource is the URL of an ac:image's ri:attachment or ri:url.
func (c converter) resource(n *node) string {
	if a := n.child(nsRI, "attachment"); a != nil {
		return c.attachment(a.attr(nsRI, "filename"))
	}
	if u := n.child(nsRI, "url"); u != nil {
		return u.attr(nsRI, "value")
	}
	return ""
}

func (c converter) task(n *node) {
	checked := ""
	if strings.TrimSpace(n.child(nsAC, "task-status").plainText()) == "complete" {
		checked = " checked"
	}
	c.b.WriteString("<li><input type=checkbox disabled" + checked + "> <span>")
	if body := n.child(nsAC, "task-body"); body != nil {
		c.kids(body)
	}
	c.b.WriteString("</span></li>")
}

func (c converter) macro(n *node) {
	switch name := n.attr(nsAC, "name"); name {
	case "status":
		colour := strings.ToLower(strings.TrimSpace(n.param("colour").plainText()))
		if colour == "" {
			colour = "grey"
		}
		title := n.param("title").plainText()
		if title == "" {
			title = colour
		}
		c.b.WriteString(`<span class="lozenge lozenge-` + html.EscapeString(colour) + `">` + html.EscapeString(strings.ToUpper(title)) + `</span>`)
	case "details":
		c.b.WriteString("<div class=details>")
		if body := n.child(nsAC, "rich-text-body"); body != nil {
			c.kids(body)
		}
		c.b.WriteString("</div>")
	case "view-file":
		p := n.param("name")
		var file string
		if p != nil {
			if a := p.child(nsRI, "attachment"); a != nil {
				file = a.attr(nsRI, "filename")
			}
		}
		c.b.WriteString(`<a class=file-card href="` + html.EscapeString(c.attachment(file)) + `"><span class=file-icon>PDF</span><span>` +
			html.EscapeString(file) + `<br><small>Preview in Confluence · click to open</small></span></a>`)
	default:
		c.b.WriteString(`<div class=macro>` + html.EscapeString(name) + ` macro</div>`)
	}
}

// showDate formats a <time datetime> as Confluence's date chip does.
func showDate(d string) string {
	t, err := time.Parse(time.DateOnly, d)
	if err != nil {
		return d
	}
	return t.Format("2 Jan 2006")
}

const previewCSS = `
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Noto Sans","Helvetica Neue",Arial,sans-serif;color:#172B4D;background:#F4F5F7;margin:0;padding:24px;font-size:14px;line-height:1.5}
article{background:#fff;max-width:860px;margin:0 auto 24px;padding:32px 40px;border-radius:3px;box-shadow:0 1px 2px rgba(9,30,66,.25)}
nav{color:#6B778C;font-size:12px}
h1{font-size:24px;margin:4px 0 2px}h1 a{color:inherit;text-decoration:none}
.meta{color:#6B778C;font-size:12px;margin-bottom:16px}
h2{font-size:20px;margin:28px 0 8px;font-weight:500}h3{font-size:16px;margin:16px 0 4px;font-weight:600}
a{color:#0052CC}
table{border-collapse:collapse;margin:8px 0;width:100%}th,td{border:1px solid #C1C7D0;padding:7px 10px;text-align:left;vertical-align:top}th{background:#F4F5F7;font-weight:600}
td ul{margin:0;padding-left:18px}
.details table th{width:140px}
.lozenge{display:inline-block;border-radius:3px;padding:0 4px;font-size:11px;font-weight:700;line-height:16px;text-transform:uppercase}
.lozenge-green{background:#E3FCEF;color:#006644}.lozenge-red{background:#FFEBE6;color:#BF2600}.lozenge-yellow{background:#FFF0B3;color:#172B4D}
.lozenge-blue{background:#DEEBFF;color:#0747A6}.lozenge-grey{background:#DFE1E6;color:#42526E}.lozenge-purple{background:#EAE6FF;color:#403294}
.date{display:inline-block;background:#DFE1E6;border-radius:3px;padding:0 5px;font-size:13px}
ul.tasks{list-style:none;padding-left:4px}ul.tasks li{margin:4px 0}ul.tasks input{margin-right:6px;vertical-align:middle}
ul.tasks input:checked+span{text-decoration:line-through;color:#6B778C}
img{max-width:100%;border:1px solid #DFE1E6;border-radius:3px}
.file-card{display:inline-flex;align-items:center;gap:12px;border:1px solid #DFE1E6;border-radius:3px;padding:10px 16px;text-decoration:none;color:#172B4D;margin:8px 0}
.file-icon{background:#DE350B;color:#fff;font-weight:700;font-size:11px;padding:8px 6px;border-radius:2px}
.file-card small{color:#6B778C}
.file-link::before{content:"";display:inline-block;width:10px;height:12px;border:1.5px solid #0052CC;border-radius:2px;margin-right:6px;vertical-align:-1px}
.macro{border:1px dashed #C1C7D0;padding:4px 8px;color:#6B778C}
hr{border:0;border-top:1px solid #DFE1E6;margin:24px 0 8px}sub{color:#6B778C;font-size:11px}
.error{color:#BF2600}
`
