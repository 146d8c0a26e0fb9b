package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
)

// ErrTrailingData: something other than white space follows the JSON value.
var ErrTrailingData = errors.New("trailing data after the JSON value")

// DecodeJSON decodes exactly one JSON value from b into v, refusing
// unknown object members, an object whose members repeat a name (also in
// another case, which encoding/json folds into one field: the last would
// win, and what a proxy or filter read would not be what is used), and
// anything but white space after the value: a stray "}" or "]" and a
// second value ("{…} {}") alike. Decoder.More does not do this: it answers
// false on a closing delimiter. The errors have no zerr kind; callers wrap
// them as zerr.BadRequest with their own text.
func DecodeJSON(b []byte, v any) error {
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		if _, err := ObjectMembers(b); err != nil {
			return err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return ErrTrailingData
	}
	return nil
}

// ObjectMembers reads one JSON object and nothing after it, and returns its
// members by name. A duplicate member, also one that differs only in case
// as encoding/json folds it (Unicode simple folding: "uſername" and
// "Username" are both "username" to it), is an error.
func ObjectMembers(b []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	m := make(map[string]json.RawMessage)
	folded := make(map[string]bool)
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, errors.New("not a JSON object")
		}
		name, _ := t.(string)
		k := foldKey(name)
		if folded[k] {
			return nil, fmt.Errorf("duplicate member %q", name)
		}
		folded[k] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, errors.New("not a JSON object")
		}
		m[name] = v
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, errors.New("not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, ErrTrailingData
	}
	return m, nil
}

// foldKey maps s to one spelling per class of names that Unicode simple
// case folding (what encoding/json and bytes.EqualFold use) makes equal:
// each rune becomes the smallest rune of its folding orbit.
func foldKey(s string) string {
	var b strings.Builder
	for _, r := range s {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		b.WriteRune(m)
	}
	return b.String()
}
