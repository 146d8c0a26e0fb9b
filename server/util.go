package server

import (
	"bytes"
	"encoding/pem"

	"github.com/zbca/zbca/internal/web"
	"github.com/zbca/zbca/internal/zerr"
)

// decodeStrict decodes one JSON object, refusing an empty body, unknown
// fields and any trailing data (web.DecodeJSON).
func decodeStrict(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return zerr.Wrap(zerr.BadRequest, errEmptyBody, "request body is empty")
	}
	if err := web.DecodeJSON(b, v); err != nil {
		return zerr.Wrap(zerr.BadRequest, err, "malformed JSON")
	}
	return nil
}

func pemDER(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
