package jobs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// TestScanKeysMatchesTokenWalk: the byte scanner (keyscan.go) gives the
// Token walk's answers — on the design example, on every edit that makes
// a duplicate, case-variant, escaped or misspelt key at every object, on
// every truncation and on random byte damage.
func TestScanKeysMatchesTokenWalk(t *testing.T) {
	base := payloadDesignExample
	inputs := []string{base, `{}`, `[]`, `"x"`, `{"a":1,"A":2}`, `{"schema":1,"schema":1}`, `{"\u0073chema":1,"schema":2}`,
		`{"report":{"ſections":[]}}`, `{"report":{"title":"a\u0000"}}`, `{"a":tru,"a":1}`, `{"a":"\x","a":1}`, `{"a":1e,"a":2}`,
		"{\"a\":\"\x01\",\"a\":1}", `{"attachments":[{"filename":"a","FileName":"b"}]}`, `{"report" : { "kind" : "x" , "KIND":"y" } }`}
	for _, k := range []string{"integration_id", "kind", "title", "filename", "schema", "space_key", "votes", "name"} {
		for _, v := range []string{k, strings.ToUpper(k), `\u00` + fmt.Sprintf("%x", k[0]) + k[1:], strings.ReplaceAll(k, "k", "\u212a"), strings.ReplaceAll(k, "s", "ſ"), k + "x"} {
			for i := 0; i < strings.Count(base, `"`+k+`"`); i++ {
				idx := nthIndex(base, `"`+k+`"`, i)
				inputs = append(inputs, base[:idx]+`"`+v+`": 1, `+base[idx:], base[:idx]+`"`+v+`"`+base[idx+len(k)+2:])
			}
		}
	}
	for i := 0; i < len(base); i += 7 {
		inputs = append(inputs, base[:i])
	}
	r := rand.New(rand.NewPCG(17, 17))
	for range 2000 {
		b := []byte(base)
		for range 1 + r.IntN(3) {
			const damage = "{}[],:\"\\ aA0\x01\xff"
			b[r.IntN(len(b))] = damage[r.IntN(len(damage))]
		}
		inputs = append(inputs, string(b))
	}
	typ := reflect.TypeOf(&PublishPayload{})
	refused := 0
	for _, in := range inputs {
		want := tokenWalk([]byte(in), typ)
		got := scanKeys([]byte(in), typ)
		if fmt.Sprint(want) != fmt.Sprint(got) {
			t.Fatalf("%q:\n token walk: %v\n scanner:    %v", in, want, got)
		}
		if want != nil {
			refused++
		}
	}
	if refused < 50 {
		t.Fatalf("only %d of %d inputs refused: the corpus does not test the key checks", refused, len(inputs))
	}
}

func BenchmarkCheckKeys(b *testing.B) {
	data, typ := []byte(payloadDesignExample), reflect.TypeOf(&PublishPayload{})
	b.Run("scanner", func(b *testing.B) {
		for b.Loop() {
			_ = scanKeys(data, typ)
		}
	})
	b.Run("token-walk", func(b *testing.B) {
		for b.Loop() {
			_ = tokenWalk(data, typ)
		}
	})
}

func nthIndex(s, sub string, n int) int {
	at := 0
	for ; n > 0; n-- {
		at += strings.Index(s[at:], sub) + len(sub)
	}
	return at + strings.Index(s[at:], sub)
}

// tokenWalk is the reference: the encoding/json Token walk checkKeys used
// before the scanner.
func tokenWalk(data []byte, t reflect.Type) error {
	err := walkKeys(json.NewDecoder(bytes.NewReader(data)), t, "")
	var pe *PayloadError
	if errors.As(err, &pe) {
		return pe
	}
	return nil
}

func walkKeys(dec *json.Decoder, t reflect.Type, at string) error {
	for t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface) {
		if t.Kind() == reflect.Interface {
			t = nil
			break
		}
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]string{} // folded key → the key as written
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := k.(string)
			path := joinPath(at, key)
			if prev, dup := seen[foldKey(key)]; dup {
				if prev == key {
					return perr(path, "duplicate key (each key once per object)")
				}
				return perr(path, "%s and %s differ only in case: each key once per object, spelled exactly as the schema defines it", quote(prev), quote(key))
			}
			seen[foldKey(key)] = key
			var ft reflect.Type
			switch {
			case t != nil && t.Kind() == reflect.Struct:
				f, exact, ok := structField(t, key)
				if ok && !exact {
					return perr(path, "unknown field; the schema spells it %s (keys are case-sensitive)", quote(jsonName(f)))
				}
				ft = f.Type // unknown keys: the decoder names them
			case t != nil && t.Kind() == reflect.Map:
				ft = t.Elem()
			}
			if err := walkKeys(dec, ft, path); err != nil {
				return err
			}
		}
		_, err = dec.Token()
	case json.Delim('['):
		var et reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			et = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := walkKeys(dec, et, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
		_, err = dec.Token()
	}
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}
