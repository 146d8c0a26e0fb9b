package verify

import (
	"fmt"
	"time"
)

// Result is the verdict on a certificate.
type Result string

// The results, in the order they are decided: the first that applies is
// answered. Valid and Expiring are the two that let the user in.
const (
	Malformed   Result = "malformed"     // not a certificate, or a key zbca never certifies
	Untrusted   Result = "untrusted"     // not issued by zbca (another CA, a bad signature, an unknown serial, not a client certificate)
	Revoked     Result = "revoked"       // revoked (废除), whatever its dates
	Mismatch    Result = "mismatch"      // issued to another enterprise than the one logging in
	Expired     Result = "expired"       // after NotAfter
	NotYetValid Result = "not_yet_valid" // before NotBefore
	Expiring    Result = "expiring"      // valid, with at most expiring_days days left
	Valid       Result = "valid"
)

// Results lists every result, for metrics and tests.
var Results = []Result{Valid, Expiring, Expired, NotYetValid, Revoked, Untrusted, Mismatch, Malformed}

// OK reports whether the certificate may be used to log in.
func (r Result) OK() bool { return r == Valid || r == Expiring }

// Enterprise is the certificate's holder: the account username, and the
// name (subject O) and enterprise ID (subject serialNumber) it certifies.
type Enterprise struct {
	Username string `json:"username"`
	Name     string `json:"name"`
	ID       string `json:"id"`
}

// Message is what to show the user, in Chinese and in English. The Chinese
// texts are the ones users know from the legacy system's help page.
type Message struct {
	ZH string `json:"zh"`
	EN string `json:"en"`
}

// Answer is the verification API's answer.
type Answer struct {
	Result Result `json:"result"`
	// Valid is true for valid and expiring.
	Valid      bool        `json:"valid"`
	Enterprise *Enterprise `json:"enterprise,omitempty"`
	// ClaimedUsername is the username given with the request, when it is
	// not the certificate's (mismatch).
	ClaimedUsername string    `json:"claimed_username,omitempty"`
	Serial          string    `json:"serial,omitempty"` // lowercase hex
	NotBefore       time.Time `json:"not_before,omitzero"`
	NotAfter        time.Time `json:"not_after,omitzero"`
	// DaysLeft is the number of whole days until NotAfter, negative once
	// expired; absent when the certificate is not zbca's.
	DaysLeft         *int      `json:"days_left,omitempty"`
	RevokedAt        time.Time `json:"revoked_at,omitzero"`
	RevocationReason string    `json:"revocation_reason,omitempty"` // RFC 5280 name, e.g. keyCompromise
	Message          Message   `json:"message"`
	// Detail says, in English, what exactly is wrong with a malformed or
	// untrusted certificate.
	Detail string `json:"detail,omitempty"`
}

// message fills a.Message for a.Result.
func (a *Answer) message() {
	var m Message
	switch a.Result {
	case Valid:
		m = Message{"证书有效", "The certificate is valid."}
	case Expiring:
		m = Message{fmt.Sprintf("您的证书即将到期（%s 到期，还剩 %d 天），请重新申请证书", a.NotAfter.Format(time.DateOnly), *a.DaysLeft),
			fmt.Sprintf("Your certificate is about to expire (on %s, %d days left): please apply for a new one.", a.NotAfter.Format(time.DateOnly), *a.DaysLeft)}
	case Expired:
		m = Message{fmt.Sprintf("证书已过期（%s 到期），请重新申请证书", a.NotAfter.Format(time.DateOnly)),
			fmt.Sprintf("The certificate has expired (on %s): please apply for a new one.", a.NotAfter.Format(time.DateOnly))}
	case NotYetValid:
		m = Message{fmt.Sprintf("证书尚未生效（%s 起生效），请确认服务器和您计算机的时间是当前时间", a.NotBefore.Format(time.RFC3339)),
			fmt.Sprintf("The certificate is not valid before %s: check that the clocks are right.", a.NotBefore.Format(time.RFC3339))}
	case Revoked:
		m = Message{fmt.Sprintf("证书已废除（%s），请重新申请证书", a.RevokedAt.Format(time.DateOnly)),
			fmt.Sprintf("The certificate was revoked on %s (%s): please apply for a new one.", a.RevokedAt.Format(time.DateOnly), a.RevocationReason)}
	case Mismatch:
		e := a.Enterprise
		m = Message{fmt.Sprintf("该证书与用户名不匹配：证书属于 %s（%s），登录用户名为 %s。请检查您提交的证书是否为向联网直报系统报送数据的证书，并核实企业账户信息", e.Username, e.Name, a.ClaimedUsername),
			fmt.Sprintf("The certificate does not match the user name: it belongs to %s (%s), but the login is for %s. Check that you chose the certificate for the reporting system, and the account details.", e.Username, e.Name, a.ClaimedUsername)}
	case Untrusted:
		m = Message{"该证书不是本系统签发的证书，请检查您提交的证书是否为向联网直报系统报送数据的证书",
			"The certificate was not issued by this CA: check that you chose the certificate for the reporting system."}
	default:
		m = Message{"无法识别该证书（证书文件可能已损坏），请重新申请证书",
			"The certificate cannot be read (the certificate file may be damaged): please apply for a new one."}
	}
	a.Message = m
}
