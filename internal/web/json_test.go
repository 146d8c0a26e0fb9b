package web

import (
	"errors"
	"testing"
)

func TestDecodeJSONRefusesTrailingData(t *testing.T) {
	type req struct {
		A string `json:"a"`
	}
	for _, tc := range []struct {
		in      string
		wantErr error // nil: any error
		ok      bool
	}{
		{`{"a":"x"}`, nil, true},
		{" {\"a\":\"x\"} \n\t", nil, true},
		{`{"a":"x"}}`, ErrTrailingData, false},
		{`{"a":"x"}]`, ErrTrailingData, false},
		{`{"a":"x"} {}`, ErrTrailingData, false},
		{`{"a":"x"}{"a":"y"}`, ErrTrailingData, false},
		{`{"a":"x"} x`, ErrTrailingData, false},
		{`{"a":"x"},`, ErrTrailingData, false},
		{`{"a":"x","b":1}`, nil, false},
		{`{"a":"x","a":"y"}`, nil, false},
		{`{"a":"x","A":"y"}`, nil, false},
		{`{"username":"x","uſername":"y"}`, nil, false}, // U+017F folds to s (encoding/json matches it)
		{`{"k":"x","\u212a":"y"}`, nil, false},          // the Kelvin sign folds to k
		{`{"A":"y"}`, nil, true},                        // one member, in another case: encoding/json's folding, unambiguous
		{`{"a":"x"`, nil, false},
		{``, nil, false},
	} {
		var v req
		err := DecodeJSON([]byte(tc.in), &v)
		switch {
		case tc.ok && err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case !tc.ok && err == nil:
			t.Errorf("%q accepted", tc.in)
		case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
			t.Errorf("%q: %v, want %v", tc.in, err, tc.wantErr)
		}
	}
}

// TestObjectMembersFolding: names that encoding/json would match to one
// field, by any Unicode simple folding, are one name twice (the second
// review's bypass used U+017F, the long s).
func TestObjectMembersFolding(t *testing.T) {
	for _, in := range []string{
		`{"username":"beta","uſername":"acme"}`,
		`{"password":"a","paſſword":"b"}`,
		`{"kid":"a","` + "\u212a" + `id":"b"}`,
		`{"Username":"a","USERNAME":"b"}`,
	} {
		if _, err := ObjectMembers([]byte(in)); err == nil {
			t.Errorf("%s accepted", in)
		}
		var v struct {
			Username string `json:"username"`
			Password string `json:"password"`
			KID      string `json:"kid"`
		}
		if err := DecodeJSON([]byte(in), &v); err == nil {
			t.Errorf("DecodeJSON accepted %s as %+v", in, v)
		}
	}
	if _, err := ObjectMembers([]byte(`{"username":"a","user_name":"b","usernames":"c"}`)); err != nil {
		t.Errorf("distinct names refused: %v", err)
	}
}
