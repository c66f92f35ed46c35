package confluence

import "testing"

// Search text never escapes its CQL string nor adds CQL syntax.
func TestCQLText(t *testing.T) {
	for in, want := range map[string]string{
		"Retro":                 "Retro",
		"  Sprint   42 ":        "Sprint 42",
		`Retro" OR title ~ "x`:  "Retro OR title x",
		`a\"b`:                  "a b",
		"key:value (draft)*?":   "key value draft",
		"Team's retro, #4 @all": "Team's retro, #4 @all",
		"Ünïcode café":          "Ünïcode café",
	} {
		if got := cqlText(in); got != want {
			t.Errorf("cqlText(%q) = %q, want %q", in, got, want)
		}
	}
}
