package enroll

import (
	"github.com/zbca/zbca/internal/web"
	"github.com/zbca/zbca/internal/zerr"
)

// decodeJSON decodes one JSON object, refusing unknown fields and any
// trailing data (web.DecodeJSON).
func decodeJSON(b []byte, v any) error {
	if err := web.DecodeJSON(b, v); err != nil {
		return zerr.Wrap(zerr.BadRequest, err, "malformed JSON")
	}
	return nil
}
