package zerr

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestKindOfOutermostWins(t *testing.T) {
	bad := New(BadRequest, "bad input")
	for _, tc := range []struct {
		name string
		err  error
		want *Kind
	}{
		{"plain", errors.New("x"), Internal},
		{"nil", nil, Internal},
		{"new", bad, BadRequest},
		{"internal wraps bad request", Wrap(Internal, bad, "storing"), Internal},
		{"bad request wraps internal", Wrap(BadRequest, Wrap(Internal, io.EOF, "db"), "refused"), BadRequest},
		{"fmt wraps internal wraps not found", fmt.Errorf("ctx: %w", Wrap(Internal, New(NotFound, "gone"), "reading")), Internal},
		{"fmt wraps kind", fmt.Errorf("reading: %w", NotFound), NotFound},
		{"join: first wins", errors.Join(New(Conflict, "c"), bad), Conflict},
		{"kind deep under plain wrappers", fmt.Errorf("a: %w", fmt.Errorf("b: %w", Policy)), Policy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := KindOf(tc.err); got != tc.want {
				t.Errorf("KindOf = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPublicHidesInternalText(t *testing.T) {
	secret := errors.New("pq: password authentication failed for user zbca at 10.0.0.5")
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"client cause shown", Wrap(BadRequest, errors.New("unexpected EOF"), "malformed JSON"), "malformed JSON: unexpected EOF"},
		{"internal cause hidden", Wrap(BadRequest, Wrap(Internal, secret, "db"), "refused"), "refused"},
		{"internal deep", Wrap(Conflict, fmt.Errorf("x: %w", Wrap(Internal, secret, "db")), "already"), "already"},
		{"new", New(Policy, "daily limit"), "daily limit"},
		{"fmt around internal", fmt.Errorf("ctx: %w", errors.Join(New(NotFound, "n"), Wrap(Internal, secret, "db"))), "not found"},
		{"fmt around client", fmt.Errorf("enterprise x: %w", NotFound), "enterprise x: not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Public(tc.err); got != tc.want {
				t.Errorf("Public = %q, want %q", got, tc.want)
			}
		})
	}
}
