package acme

import (
	"errors"
	"net/http"

	"github.com/zbca/zbca/internal/zerr"
)

// Problem is an RFC 7807 problem document with an ACME error type (RFC 8555
// §6.7).
type Problem struct {
	Type   string `json:"type"`
	Detail string `json:"detail,omitempty"`
	Status int    `json:"status"`
}

func (p *Problem) Error() string { return p.Type + ": " + p.Detail }

const ns = "urn:ietf:params:acme:error:"

func prob(typ string, status int, detail string) *Problem {
	return &Problem{Type: ns + typ, Detail: detail, Status: status}
}

func malformed(d string) *Problem    { return prob("malformed", http.StatusBadRequest, d) }
func unauthorized(d string) *Problem { return prob("unauthorized", http.StatusForbidden, d) }
func badNonce(d string) *Problem     { return prob("badNonce", http.StatusBadRequest, d) }
func badSigAlg(d string) *Problem    { return prob("badSignatureAlgorithm", http.StatusBadRequest, d) }
func accountDoesNotExist(d string) *Problem {
	return prob("accountDoesNotExist", http.StatusBadRequest, d)
}
func rejectedIdentifier(d string) *Problem {
	return prob("rejectedIdentifier", http.StatusBadRequest, d)
}
func badCSR(d string) *Problem         { return prob("badCSR", http.StatusBadRequest, d) }
func eabRequired(d string) *Problem    { return prob("externalAccountRequired", http.StatusBadRequest, d) }
func alreadyRevoked(d string) *Problem { return prob("alreadyRevoked", http.StatusBadRequest, d) }
func badRevocationReason(d string) *Problem {
	return prob("badRevocationReason", http.StatusBadRequest, d)
}
func orderNotReady(d string) *Problem { return prob("orderNotReady", http.StatusForbidden, d) }
func rateLimited(d string) *Problem   { return prob("rateLimited", http.StatusTooManyRequests, d) }
func serverInternal() *Problem {
	return prob("serverInternal", http.StatusInternalServerError, "internal error; the cause is in the server log")
}

// toProblem maps a core error to its ACME problem: the one mapping at the
// ACME edge.
func toProblem(err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	switch zerr.KindOf(err) {
	case zerr.BadCSR:
		return badCSR(err.Error())
	case zerr.BadRequest:
		return malformed(err.Error())
	case zerr.NotFound:
		return prob("malformed", http.StatusNotFound, err.Error())
	case zerr.Unauthorized, zerr.Disabled:
		return unauthorized(err.Error())
	case zerr.Policy:
		return rateLimited(err.Error())
	case zerr.Conflict:
		return malformed(err.Error())
	}
	return nil
}
