package server

import (
	"bytes"
	"encoding/json"
	"encoding/pem"

	"github.com/zbca/zbca/internal/zerr"
)

// decodeStrict decodes one JSON object, refusing unknown fields and
// trailing data.
func decodeStrict(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return zerr.Wrap(zerr.BadRequest, errEmptyBody, "request body is empty")
	}
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

func pemDER(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
