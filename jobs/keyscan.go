package jobs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
	"unicode/utf8"
)

// scanKeys is checkKeys's walk over the raw bytes: it reads object keys
// and skips every other value without decoding it. The payload's bulk is
// base64 attachment data, which encoding/json's Token would unquote into
// strings only for them to be thrown away; the walk was a fifth of the
// worker's CPU per publish (issue 17). Same answers as the Token walk
// (TestScanKeysMatchesTokenWalk): a *PayloadError for the first duplicate,
// case-variant or misspelt key, nil otherwise — also for data that is not
// JSON, which the decoder then describes.
func scanKeys(data []byte, t reflect.Type) error {
	s := keyScanner{data: data}
	err := s.value(t)
	if _, ok := err.(*PayloadError); ok {
		return err
	}
	return nil
}

type keyScanner struct {
	data []byte
	i    int
	path []pathPart // where the walk is; rendered only for an error
}

type pathPart struct {
	key   string
	index int // -1 for a key
}

// at is the JSON path of the value being walked, as joinPath writes it.
func (s *keyScanner) at() string {
	at := ""
	for _, p := range s.path {
		if p.index >= 0 {
			at = fmt.Sprintf("%s[%d]", at, p.index)
		} else {
			at = joinPath(at, p.key)
		}
	}
	return at
}

// errSyntax stops the walk on data that is not JSON.
var errSyntax = fmt.Errorf("not JSON")

func (s *keyScanner) ws() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

func (s *keyScanner) value(t reflect.Type) error {
	for t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface) {
		if t.Kind() == reflect.Interface {
			t = nil
			break
		}
		t = t.Elem()
	}
	s.ws()
	if s.i >= len(s.data) {
		return errSyntax
	}
	switch s.data[s.i] {
	case '{':
		return s.object(t)
	case '[':
		return s.array(t)
	case '"':
		_, _, err := s.str()
		return err
	}
	start := s.i // a number, true, false or null
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return s.literal(start)
		}
		s.i++
	}
	return s.literal(start)
}

func (s *keyScanner) literal(start int) error {
	switch lit := s.data[start:s.i]; {
	case string(lit) == "true", string(lit) == "false", string(lit) == "null":
		return nil
	case !json.Valid(lit):
		return errSyntax
	}
	return nil
}

func (s *keyScanner) object(t reflect.Type) error {
	s.i++ // {
	var fields *structKeys
	if t != nil && t.Kind() == reflect.Struct {
		fields = keysOf(t)
	}
	type seenKey struct{ folded, key string }
	var seen []seenKey // the object's keys so far (payload objects are small)
	for first := true; ; first = false {
		s.ws()
		if s.i < len(s.data) && s.data[s.i] == '}' {
			s.i++
			return nil
		}
		if !first {
			if s.i >= len(s.data) || s.data[s.i] != ',' {
				return errSyntax
			}
			s.i++
			s.ws()
		}
		if s.i >= len(s.data) || s.data[s.i] != '"' {
			return errSyntax
		}
		raw, plain, err := s.str()
		if err != nil {
			return err
		}
		key := string(raw)
		if !plain {
			if err := json.Unmarshal(s.data[s.i-len(raw)-2:s.i], &key); err != nil {
				return errSyntax
			}
		}
		s.path = append(s.path, pathPart{key: key, index: -1})
		folded := foldKeyFast(key)
		for _, p := range seen {
			if p.folded != folded {
				continue
			}
			if p.key == key {
				return perr(s.at(), "duplicate key (each key once per object)")
			}
			return perr(s.at(), "%s and %s differ only in case: each key once per object, spelled exactly as the schema defines it", quote(p.key), quote(key))
		}
		seen = append(seen, seenKey{folded, key})
		var ft reflect.Type
		switch {
		case fields != nil:
			if f, ok := fields.exact[key]; ok {
				ft = f.Type
			} else if f, ok := fields.folded[folded]; ok {
				return perr(s.at(), "unknown field; the schema spells it %s (keys are case-sensitive)", quote(jsonName(f)))
			}
		case t != nil && t.Kind() == reflect.Map:
			ft = t.Elem()
		}
		s.ws()
		if s.i >= len(s.data) || s.data[s.i] != ':' {
			return errSyntax
		}
		s.i++
		if err := s.value(ft); err != nil {
			return err
		}
		s.path = s.path[:len(s.path)-1]
	}
}

func (s *keyScanner) array(t reflect.Type) error {
	s.i++ // [
	var et reflect.Type
	if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
		et = t.Elem()
	}
	for n := 0; ; n++ {
		s.ws()
		if s.i < len(s.data) && s.data[s.i] == ']' {
			s.i++
			return nil
		}
		if n > 0 {
			if s.i >= len(s.data) || s.data[s.i] != ',' {
				return errSyntax
			}
			s.i++
		}
		s.path = append(s.path, pathPart{index: n})
		if err := s.value(et); err != nil {
			return err
		}
		s.path = s.path[:len(s.path)-1]
	}
}

// str skips a string at s.i and returns its raw bytes between the quotes;
// plain reports that they need no unquoting (no escape, all ASCII).
func (s *keyScanner) str() (raw []byte, plain bool, err error) {
	start := s.i + 1
	plain = true
	for j := start; j < len(s.data); {
		k := bytes.IndexAny(s.data[j:], "\"\\")
		if k < 0 {
			return nil, false, errSyntax
		}
		j += k
		if s.data[j] == '\\' {
			plain = false
			if j+1 >= len(s.data) {
				return nil, false, errSyntax
			}
			switch s.data[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if j+6 > len(s.data) || !isHex4(s.data[j+2:j+6]) {
					return nil, false, errSyntax
				}
				j += 6
			default:
				return nil, false, errSyntax
			}
			continue
		}
		s.i = j + 1
		raw = s.data[start:j]
		for _, b := range raw {
			if b < 0x20 {
				return nil, false, errSyntax // a control character must be escaped
			}
			if b >= utf8.RuneSelf {
				plain = false
			}
		}
		return raw, plain, nil
	}
	return nil, false, errSyntax
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// structKeys is a struct type's JSON field names, exact and folded.
type structKeys struct {
	exact  map[string]reflect.StructField
	folded map[string]reflect.StructField // the first field of each fold class, as structField finds it
}

var structKeysCache sync.Map // reflect.Type → *structKeys

func keysOf(t reflect.Type) *structKeys {
	if k, ok := structKeysCache.Load(t); ok {
		return k.(*structKeys)
	}
	k := &structKeys{exact: map[string]reflect.StructField{}, folded: map[string]reflect.StructField{}}
	for i := range t.NumField() {
		f := t.Field(i)
		name := jsonName(f)
		if _, ok := k.exact[name]; !ok {
			k.exact[name] = f
		}
		if _, ok := k.folded[foldKey(name)]; !ok {
			k.folded[foldKey(name)] = f
		}
	}
	structKeysCache.Store(t, k)
	return k
}

// foldKeyFast is foldKey with a fast path for ASCII keys: an ASCII
// letter's fold class has its upper case as the smallest member (the
// other members of k's and s's, U+212A and U+017F, are larger).
func foldKeyFast(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return foldKey(s)
		}
	}
	var lower bool
	for i := 0; i < len(s); i++ {
		if 'a' <= s[i] && s[i] <= 'z' {
			lower = true
			break
		}
	}
	if !lower {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		}
	}
	return string(b)
}
