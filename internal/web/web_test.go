package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/zbca/zbca/internal/zerr"
)

// TestErrorHandlerNeverShowsInternalText: the answer follows the
// outermost kind, and no internal cause reaches the client, whichever way
// it is wrapped; the cause is in the log.
func TestErrorHandlerNeverShowsInternalText(t *testing.T) {
	const secret = "dial tcp 10.0.0.5:5432: password authentication failed for user zbca"
	for _, tc := range []struct {
		name       string
		err        error
		wantStatus int
		wantDetail string
	}{
		{"internal wraps bad request", zerr.Wrap(zerr.Internal, zerr.New(zerr.BadRequest, "%s", secret), "issuing"), 500, "internal error; the cause is in the server log"},
		{"bad request wraps internal", zerr.Wrap(zerr.BadRequest, zerr.Wrap(zerr.Internal, errors.New(secret), "db"), "refused"), 400, "refused"},
		{"no kind", errors.New(secret), 500, "internal error; the cause is in the server log"},
		{"client text kept", zerr.Wrap(zerr.BadRequest, errors.New("unexpected EOF"), "malformed JSON"), 400, "malformed JSON: unexpected EOF"},
		{"policy", zerr.New(zerr.Policy, "daily limit reached"), 403, "daily limit reached"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			e := New(slog.New(slog.NewTextHandler(&logs, nil)), "test")
			e.GET("/", func(echo.Context) error { return tc.err })
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			var p Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			if rec.Code != tc.wantStatus || p.Status != tc.wantStatus || p.Detail != tc.wantDetail {
				t.Errorf("got %d %+v, want %d %q", rec.Code, p, tc.wantStatus, tc.wantDetail)
			}
			if strings.Contains(rec.Body.String(), "password authentication") {
				t.Errorf("internal text reached the client: %s", rec.Body)
			}
			if tc.wantStatus >= 500 && !strings.Contains(logs.String(), "password authentication") {
				t.Errorf("the cause is not in the log: %s", logs.String())
			}
		})
	}
}
