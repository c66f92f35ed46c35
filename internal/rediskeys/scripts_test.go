package rediskeys

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	rawString = regexp.MustCompile("`[^`]*redis\\.call\\([^`]*`")
	// redis.call('CMD', first, …): first is the key for every command the
	// scripts use except TIME.
	redisCall = regexp.MustCompile(`redis\.call\(\s*'([A-Za-z]+)'\s*(?:,\s*([^,)]+))?`)
)

// Redis Cluster routes a script by its declared KEYS and refuses one whose
// keys span slots; a key built inside the script from strings or ARGV
// escapes both checks (and breaks on a cluster or behind a proxy). So
// every redis.call in every script of this module names a key that came
// from KEYS: KEYS[i], the alias K[i], or a helper's parameter fed from them.
func TestScriptsTouchOnlyDeclaredKeys(t *testing.T) {
	root := filepath.Join("..", "..")
	scripts := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, script := range rawString.FindAllString(string(src), -1) {
			scripts++
			for _, m := range redisCall.FindAllStringSubmatch(script, -1) {
				cmd, first := strings.ToUpper(m[1]), strings.TrimSpace(m[2])
				if cmd == "TIME" {
					continue
				}
				if !regexp.MustCompile(`^(KEYS|K)\[[^\]]+\]$|^key$`).MatchString(first) {
					t.Errorf("%s: redis.call('%s', %s …): the key is not one of the script's KEYS", path, cmd, first)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if scripts < 10 {
		t.Fatalf("found only %d scripts; the scan is broken", scripts)
	}
}
