package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// ErrTrailingData: something other than white space follows the JSON value.
var ErrTrailingData = errors.New("trailing data after the JSON value")

// DecodeJSON decodes exactly one JSON value from b into v, refusing
// unknown object members and anything but white space after the value:
// a stray "}" or "]" and a second value ("{…} {}") alike. Decoder.More
// does not do this: it answers false on a closing delimiter. The errors
// have no zerr kind; callers wrap them as zerr.BadRequest with their own
// text.
func DecodeJSON(b []byte, v any) error {
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
