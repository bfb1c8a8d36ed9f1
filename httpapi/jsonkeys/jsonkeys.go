// Package jsonkeys holds a request body's object keys to what encoding/json
// would otherwise let through silently: a key given twice (encoding/json
// keeps the last, so a client and a proxy that keeps the first disagree on
// what was asked) and a key spelt in another case than the field's name
// (encoding/json matches them case-insensitively, so `{"Network": ...}` is
// taken for "network", and a client that relies on it breaks under any
// stricter reader on the way). encoding/json/v2 rejects both, but this Go
// release (1.26) builds it only with GOEXPERIMENT=jsonv2.
package jsonkeys

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// Check walks the JSON document data, which is to be decoded into a value of
// type t, and refuses the first object that has a key twice, or a key that
// names one of t's fields in another case. Keys that name no field are left
// to the decoder (json.Decoder.DisallowUnknownFields). data is expected to be
// valid JSON; a syntax error is returned as it is.
func Check(data []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return walk(dec, t, "")
}

var (
	unmarshaler     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// walk reads one value from dec; t is the Go type it is for, nil where the
// type says nothing of its keys (any, a type that decodes itself).
func walk(dec *json.Decoder, t reflect.Type, at string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	t = element(t)
	switch tok {
	case json.Delim('{'):
		return walkObject(dec, t, at)
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := walk(dec, elem, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
		_, err := dec.Token() // ']'
		return err
	}
	return nil
}

func walkObject(dec *json.Decoder, t reflect.Type, at string) error {
	var fields map[string]reflect.Type // a struct's, by key
	var values reflect.Type            // a map's
	switch {
	case t == nil:
	case t.Kind() == reflect.Struct:
		fields = structFields(t)
	case t.Kind() == reflect.Map:
		values = t.Elem()
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("%s: object key %v is not a string", where(at), tok)
		}
		if seen[key] {
			return fmt.Errorf("%s: key %q is given twice", where(at), key)
		}
		seen[key] = true
		vt := values
		if fields != nil {
			ft, exact := fields[key]
			if name, ok := foldedKey(fields, key); ok && !exact {
				return fmt.Errorf("%s: key %q must be written %q: keys are case-sensitive", where(at), key, name)
			}
			vt = ft
		}
		if err := walk(dec, vt, at+"."+key); err != nil {
			return err
		}
	}
	_, err := dec.Token() // '}'
	return err
}

// element is the type whose JSON a value of t holds: pointers followed,
// nil for a type that decodes itself, whose keys are its own business.
func element(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() == reflect.Interface {
		return nil
	}
	if p := reflect.PointerTo(t); p.Implements(unmarshaler) || p.Implements(textUnmarshaler) {
		return nil
	}
	return t
}

// foldedKey finds the field that encoding/json would fill from key: the
// one whose name equals it under Unicode case folding (bytes.EqualFold, as
// encoding/json matches), so "ſubnet" with a long s is caught too.
func foldedKey(fields map[string]reflect.Type, key string) (string, bool) {
	for name := range fields {
		if strings.EqualFold(name, key) {
			return name, true
		}
	}
	return "", false
}

// structFields names the JSON keys of a struct's fields as encoding/json
// does: the tag's name or the field's, embedded structs' fields promoted,
// "-" and unexported fields left out.
func structFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	var add func(t reflect.Type)
	add = func(t reflect.Type) {
		for f := range t.Fields() {
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" {
				if ft := derefStruct(f.Type); ft != nil {
					add(ft)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			fields[name] = f.Type
		}
	}
	add(t)
	return fields
}

func derefStruct(t reflect.Type) reflect.Type {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	return t
}

func where(at string) string {
	if at == "" {
		return "the body's object"
	}
	return strings.TrimPrefix(at, ".")
}
