package enroll

import (
	"bytes"
	"encoding/json"

	"github.com/zbca/zbca/internal/zerr"
)

// decodeJSON decodes one JSON object, refusing unknown fields and trailing
// data.
func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return zerr.Wrap(zerr.BadRequest, err, "malformed JSON")
	}
	if dec.More() {
		return zerr.New(zerr.BadRequest, "trailing data after the JSON object")
	}
	return nil
}
