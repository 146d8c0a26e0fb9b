package zbcert

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"golang.org/x/crypto/acme"
)

// ACME problem types zbcert explains (RFC 8555 §6.7), without the
// "urn:ietf:params:acme:error:" prefix.
const (
	ProbRateLimited         = "rateLimited"
	ProbUnauthorized        = "unauthorized"
	ProbBadCSR              = "badCSR"
	ProbAccountDoesNotExist = "accountDoesNotExist"
	ProbServerInternal      = "serverInternal"
	ProbRejectedIdentifier  = "rejectedIdentifier"
	ProbExternalAccount     = "externalAccountRequired"
	ProbMalformed           = "malformed"
)

// problem returns the ACME problem document behind err: an *acme.Error, or
// the problem of an order that became invalid.
func problem(err error) *acme.Error {
	var pe *acme.Error
	if errors.As(err, &pe) {
		return pe
	}
	var oe *acme.OrderError
	if errors.As(err, &oe) && oe.Problem != nil {
		return oe.Problem
	}
	return nil
}

// ProblemType is the short ACME problem type of err ("rateLimited"), or ""
// when err carries no problem document. Both the RFC 8555 namespace and the
// draft "urn:acme:error:" one are understood.
func ProblemType(err error) string {
	p := problem(err)
	if p == nil {
		return ""
	}
	t := p.ProblemType
	if i := strings.LastIndex(t, ":"); i >= 0 {
		t = t[i+1:]
	}
	return t
}

// RetryBackoff is the acme.Client RetryBackoff of zbcert. x/crypto's
// default retries 429 and 5xx answers until the context ends (up to 10 s
// apart, or Retry-After), which to a user looks like a hang with no
// message. Here a 429 (rateLimited, such as the daily limit) is never
// retried, so that its problem document reaches the user at once; a 5xx is
// retried twice, 1 s and 2 s later; anything else the client retries (a bad
// nonce) at most three times, at once.
func RetryBackoff(n int, _ *http.Request, resp *http.Response) time.Duration {
	switch {
	case resp == nil, resp.StatusCode == http.StatusTooManyRequests:
		return 0
	case resp.StatusCode >= 500:
		if n > 2 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if n > 3 {
		return 0
	}
	return 10 * time.Millisecond
}

// Explain turns an error of zbcert into a sentence in l for the user:
// what happened and what to do. Errors it does not know are shown as they
// are.
func Explain(l Lang, err error) string {
	var ae *accountError
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrNoSetup):
		return l.T("err.nosetup")
	case errors.Is(err, ErrNeedPassword):
		return l.T("err.needpassword")
	case errors.As(err, &ae) && errors.Is(err, ErrNoAccount):
		return l.T("err.noaccount", ae.user, ae.user)
	case errors.As(err, &ae) && errors.Is(err, ErrAccountRefused):
		return l.T("err.accountrefused", serverSays(ae.cause), ae.user, ae.user)
	}
	var api *APIError
	if errors.As(err, &api) {
		switch {
		case api.Status == http.StatusUnauthorized || api.Status == http.StatusForbidden:
			return l.T("err.auth") + " (" + api.Error() + ")"
		case api.Status == http.StatusTooManyRequests:
			return l.T("err.ratelimited", api.Error())
		case api.Status >= 500:
			return l.T("err.server", api.Error())
		}
		return l.T("err.refused", api.Error())
	}
	if p := problem(err); p != nil {
		d := serverSays(err)
		switch ProblemType(err) {
		case ProbRateLimited:
			return l.T("err.ratelimited", d)
		case ProbUnauthorized, ProbExternalAccount, ProbAccountDoesNotExist:
			return l.T("err.unauthorized", d)
		case ProbBadCSR:
			return l.T("err.badcsr", d)
		case ProbRejectedIdentifier:
			return l.T("err.rejectedid", d)
		case ProbServerInternal:
			return l.T("err.server", d)
		}
		if p.StatusCode == http.StatusTooManyRequests {
			return l.T("err.ratelimited", d)
		}
		if p.StatusCode >= 500 {
			return l.T("err.server", d)
		}
		return l.T("err.refused", d)
	}
	var se *StepError
	if isTimeout(err) {
		step, d := "", DefaultStepTimeout
		if errors.As(err, &se) {
			step, d = se.Step, se.Timeout
		}
		return l.T("err.timeout", d, l.T("step."+step))
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return l.T("err.network", err.Error())
	}
	return err.Error()
}

// serverSays is the server's own words in err: a problem document's
// detail (zbca writes the rate-limit and account texts in zh/en), else
// the error's text.
func serverSays(err error) string {
	if p := problem(err); p != nil && p.Detail != "" {
		return p.Detail
	}
	var api *APIError
	if errors.As(err, &api) {
		return api.Error()
	}
	if err == nil {
		return ""
	}
	return err.Error()
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	// x/crypto/acme formats some causes with %v ("acme: invalid account
	// response: context deadline exceeded"): the words are all that is left.
	return err != nil && strings.HasSuffix(err.Error(), context.DeadlineExceeded.Error())
}
