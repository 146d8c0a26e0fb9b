// Package zerr defines the typed error kinds used across zbca's core.
//
// The core returns errors that wrap one of the Kind sentinels below; the web
// edge maps kinds to HTTP statuses (and later to ACME problem documents) in
// one place, and the CLI prints the message. Internal causes stay in logs.
package zerr

import (
	"errors"
	"fmt"
)

// Kind is a class of error that callers branch on with errors.Is.
type Kind struct{ name string }

func (k *Kind) Error() string { return k.name }

var (
	// BadRequest: the caller's input is malformed or violates a rule.
	BadRequest = &Kind{"bad request"}
	// BadCSR: the certificate signing request is unparsable, badly signed or
	// carries a key that the policy refuses.
	BadCSR = &Kind{"bad csr"}
	// NotFound: the named object does not exist.
	NotFound = &Kind{"not found"}
	// Conflict: the object already exists or is in a state that forbids the
	// operation (for example, already revoked).
	Conflict = &Kind{"conflict"}
	// Unauthorized: the caller is not allowed to do this.
	Unauthorized = &Kind{"unauthorized"}
	// Disabled: the enterprise account is disabled.
	Disabled = &Kind{"disabled"}
	// Policy: the request is well formed but refused by issuance policy.
	Policy = &Kind{"policy"}
	// Internal: a failure that is not the caller's fault.
	Internal = &Kind{"internal"}
)

type wrapped struct {
	kind *Kind
	msg  string
	err  error
}

func (w *wrapped) Error() string {
	if w.err != nil {
		return w.msg + ": " + w.err.Error()
	}
	return w.msg
}

func (w *wrapped) Unwrap() []error {
	if w.err != nil {
		return []error{w.kind, w.err}
	}
	return []error{w.kind}
}

// New returns an error of the given kind with a message for the caller.
func New(k *Kind, format string, args ...any) error {
	return &wrapped{kind: k, msg: fmt.Sprintf(format, args...)}
}

// Wrap returns an error of the given kind with a message and an underlying
// cause, both visible through errors.Is/As.
func Wrap(k *Kind, err error, format string, args ...any) error {
	return &wrapped{kind: k, msg: fmt.Sprintf(format, args...), err: err}
}

// KindOf returns the outermost kind of err, or Internal when it has none:
// Wrap(Internal, badRequest, …) is Internal, since the wrapper decided
// that the failure is not the caller's. The error tree is walked the way
// errors.Is walks it (depth first, a Wrap's own kind before its cause),
// and the first kind met wins.
func KindOf(err error) *Kind {
	if k := outermost(err); k != nil {
		return k
	}
	return Internal
}

func outermost(err error) *Kind {
	for err != nil {
		if k, ok := err.(*Kind); ok {
			return k
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if k := outermost(e); k != nil {
					return k
				}
			}
			return nil
		default:
			return nil
		}
	}
	return nil
}

// Public is the text of err that a client may read, for an error whose
// KindOf is not Internal (an Internal error shows the client a generic
// text and its cause goes to the log). A Wrap's cause is part of the text
// only when nothing inside it is Internal: Wrap(BadRequest, jsonErr,
// "malformed JSON") reads "malformed JSON: <what encoding/json said>", but
// Wrap(BadRequest, Wrap(Internal, dbErr, …), "refused") reads only
// "refused". An error that is not a Wrap keeps its text, unless something
// inside it is Internal: then the client reads the outermost kind's name.
func Public(err error) string {
	var w *wrapped
	if errors.As(err, &w) && err == error(w) {
		if w.err == nil || !hasInternal(w.err) {
			return w.Error()
		}
		return w.msg
	}
	if hasInternal(err) {
		return KindOf(err).Error()
	}
	return err.Error()
}

// hasInternal reports whether Internal is anywhere in err's tree. A cause
// without any kind, wrapped in a caller's kind, is the wrapper's choice to
// show (encoding/json's precise complaint about the caller's body).
func hasInternal(err error) bool {
	return errors.Is(err, Internal)
}
