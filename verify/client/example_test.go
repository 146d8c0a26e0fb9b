package client_test

import (
	"fmt"
	"io"
	"net/http"

	"github.com/zbca/zbca/verify/client"
)

// A submission site in Go: its TLS listener asks for a client certificate,
// the middleware asks zbca about it, and the handler reads the verified
// enterprise from the request's context.
func Example() {
	z, err := newZBCA() // a real zbca verification API, for the example
	if err != nil {
		panic(err)
	}
	defer z.Close()

	// The site: zbca's URL, the key from `zbca apikey add`, and an HTTP
	// client that trusts zbca's root.
	vc := client.New(z.URL, z.Key, z.HTTP)
	report := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res := client.FromContext(r.Context())
		fmt.Fprintf(w, "%s: %s (%s)", res.Result, res.Enterprise.Name, res.Enterprise.Username)
	})
	mw := &client.Middleware{Client: vc, Username: func(r *http.Request) string { return r.FormValue("username") }}
	site := newSite(mw.Wrap(report)) // tls.Config{ClientAuth: tls.RequireAnyClientCert}
	defer site.Close()

	// A user of enterprise acme logs in with its certificate.
	cert, _, err := z.issue("acme", 0)
	if err != nil {
		panic(err)
	}
	for _, login := range []string{"acme", "beta"} {
		resp, err := userClient(site, cert).Get(site.URL + "/report?username=" + login)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d %s\n", resp.StatusCode, body)
	}
	// Output:
	// 200 valid: 某某科技有限公司 (acme)
	// 403 该证书与用户名不匹配：证书属于 acme（某某科技有限公司），登录用户名为 beta。请检查您提交的证书是否为向联网直报系统报送数据的证书，并核实企业账户信息
	// The certificate does not match the user name: it belongs to acme (某某科技有限公司), but the login is for beta. Check that you chose the certificate for the reporting system, and the account details.
}
