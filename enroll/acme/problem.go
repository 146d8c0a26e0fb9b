package acme

import (
	"errors"
	"net/http"

	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
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

// staleAccount refuses a request signed by an account that may no longer
// act: deactivated by its client, of a disabled enterprise, or made before
// the enterprise's password was changed or its access ended (the
// credential epoch, store.ACMEAccount.Current). The detail is in Chinese
// and English: clients show it to the clerk as it is.
func staleAccount(a *store.ACMEAccount) *Problem {
	switch {
	case a.Status != "valid":
		return unauthorized("此 ACME 账户已停用（" + a.Status + "），请重新申请。 / The account is " + a.Status + ": enroll again.")
	case a.EnterpriseStatus != store.StatusActive:
		return unauthorized("企业账户已被停用，请联系证书管理员。 / The enterprise account is disabled: ask the CA's operator.")
	default:
		return accessEnded()
	}
}

// accessEnded is the refusal of an account made under an older credential
// epoch, also when the change commits while its finalize is in flight
// (store.ErrAccessEnded).
func accessEnded() *Problem {
	return unauthorized("此 ACME 账户是在企业修改密码或被终止访问之前创建的，已失效：请使用用户名和当前密码重新申请（zbcert enroll）。" +
		" / This ACME account was made before the enterprise's password was changed or its access was ended: enroll again with the username and the current password (zbcert enroll).")
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
