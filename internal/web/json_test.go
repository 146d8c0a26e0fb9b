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
		{`{"A":"y"}`, nil, true}, // one member, in another case: encoding/json's folding, unambiguous
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
