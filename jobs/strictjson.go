package jobs

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"unicode"
)

// Strict JSON (issue 13 item 6): encoding/json folds key case and lets the
// last of two equal keys win, so {"integration_id":"a","INTEGRATION_ID":"b"}
// publishes into "b" while a producer that checked tenancy with a
// case-sensitive parser saw "a". Every payload decoder goes through
// decodeStrict, which refuses that whole class of parser differentials
// before decoding: a key that is not spelled exactly as the schema defines
// it, and two keys of one object that are equal or equal ignoring case.

// decodeStrict decodes data, exactly one JSON value of v's shape with no
// unknown fields, into v. Problems come back as *PayloadError naming the
// JSON path; a document that is not JSON at all is left to the decoder to
// describe.
func decodeStrict(data []byte, v any) error {
	if err := checkKeys(data, reflect.TypeOf(v)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		// A payload from a newer (or broken) producer should be told about
		// the schema, not about the first field this version doesn't know.
		if serr := probeSchema(data); serr != nil {
			return serr
		}
		return decodeError(err, data, reflect.TypeOf(v))
	}
	if rest := bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return perr("json", "unexpected data after the JSON object at byte %d (one object per payload)", dec.InputOffset())
	}
	return nil
}

// checkKeys walks data as a value of type t and returns a *PayloadError
// for the first duplicate or case-variant key; nil when there is none or
// when data is not readable JSON (the decoder then says why).
func checkKeys(data []byte, t reflect.Type) error {
	return scanKeys(data, t) // keyscan.go
}

// structField finds the field key names: exact reports whether the key is
// spelled as the tag spells it (encoding/json would also take a case
// variant). Embedded structs are not used by the payload types.
func structField(t reflect.Type, key string) (f reflect.StructField, exact, ok bool) {
	for i := range t.NumField() {
		sf := t.Field(i)
		name := jsonName(sf)
		if name == key {
			return sf, true, true
		}
		if !ok && foldKey(name) == foldKey(key) {
			f, ok = sf, true
		}
	}
	return f, false, ok
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "" {
		return f.Name
	}
	return name
}

// foldKey maps s onto one representative of its case-folding class, the
// same classes encoding/json matches keys by (so "K", "k" and the Kelvin
// sign, "s" and "ſ", all collide).
func foldKey(s string) string {
	return strings.Map(func(r rune) rune {
		low := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			low = min(low, f)
		}
		return low
	}, s)
}
