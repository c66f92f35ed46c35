package confluencetest

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Storage format is XML with Confluence's own ac:, ri: and at: elements
// (confluence-api.md §5). Confluence rejects the whole page when the body is
// not well-formed, and it does not know HTML's named entities, so the fake
// parses strictly with only XML's five predefined entities.

// storageRoot declares the namespaces Confluence binds implicitly, so that a
// body using them parses like it does on the server.
const storageRoot = `<ac:confluence xmlns:ac="http://atlassian.com/content" xmlns:ri="http://atlassian.com/resource/identifier" xmlns:at="http://atlassian.com/template">`

// checkStorage returns nil when value is well-formed storage format, or an
// error whose text mimics Confluence's "Error parsing xhtml: …" message.
func checkStorage(value string) error {
	d := xml.NewDecoder(strings.NewReader(storageRoot + value + "</ac:confluence>"))
	d.Strict = true
	d.Entity = nil // no HTML entities: &nbsp; must fail as it does on Confluence
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			line, col := d.InputPos()
			if line == 1 {
				// Report the position in the caller's text, not in our wrapper.
				col -= len(storageRoot)
				if col < 1 {
					col = 1
				}
			}
			msg := err.Error()
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				msg = se.Msg
			}
			// Do not blame our wrapper element for an unclosed tag.
			if i := strings.Index(msg, " closed by </confluence>"); i >= 0 {
				msg = "Unexpected end of input: " + msg[:i] + " was never closed"
			}
			return fmt.Errorf("Error parsing xhtml: %s\n at [row,col {unknown-source}]: [%d,%d]", msg, line, col)
		}
	}
}
