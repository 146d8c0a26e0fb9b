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

// KindOf returns the kind of err, or Internal when it has none.
func KindOf(err error) *Kind {
	for _, k := range []*Kind{BadRequest, BadCSR, NotFound, Conflict, Unauthorized, Disabled, Policy, Internal} {
		if errors.Is(err, k) {
			return k
		}
	}
	return Internal
}
