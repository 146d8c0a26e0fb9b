package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/url"
	"text/template"

	"go.step.sm/crypto/x509util"
)

// DefaultClientTemplate is the client-certificate profile of PRODUCT.md as
// an x509util template. Operators may replace it (ca.client.template); the
// result is then checked by checkClientTemplate, and validity, serial,
// issuer and basic constraints are always set by the CA.
//
// Template data: .Enterprise.Username, .Enterprise.Name, .Enterprise.ID,
// .Enterprise.URI, .URLs.CRL, .URLs.OCSP, .URLs.CAIssuers and .Insecure.CR
// (the CSR). .URLs.CRL is the issuing CA's full CRL; with partitioned CRLs
// (ca.crl_shards) the CA writes the certificate's shard CRL in its place
// once the serial is drawn.
const DefaultClientTemplate = `{
	"subject": {
		"commonName": {{ toJson .Enterprise.Username }},
		"organization": {{ toJson .Enterprise.Name }}
		{{- if .Enterprise.ID }},
		"serialNumber": {{ toJson .Enterprise.ID }}
		{{- end }}
	},
	"uris": {{ toJson .Enterprise.URI }},
	"keyUsage": ["digitalSignature"],
	"extKeyUsage": ["clientAuth"],
	"basicConstraints": {"isCA": false},
	"crlDistributionPoints": {{ toJson .URLs.CRL }},
	"ocspServer": {{ toJson .URLs.OCSP }},
	"issuingCertificateURL": {{ toJson .URLs.CAIssuers }}
}`

// EnterpriseURI is the SAN URI that names an enterprise.
func EnterpriseURI(username string) string {
	return "urn:zbca:enterprise:" + url.PathEscape(username)
}

type templateEnterprise struct {
	Username, Name, ID, URI string
}

type templateURLs struct {
	CRL, OCSP, CAIssuers []string
}

type profile struct {
	tmpl *template.Template
}

func parseProfile(text string) (*profile, error) {
	t, err := template.New("client").Funcs(x509util.GetFuncMap()).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("parsing certificate template: %w", err)
	}
	return &profile{tmpl: t}, nil
}

// render executes the template and returns the x509 template it describes.
func (p *profile) render(csr *x509.CertificateRequest, e templateEnterprise, u templateURLs) (*x509.Certificate, error) {
	data := x509util.TemplateData{
		"Enterprise": e,
		"URLs":       u,
		"Insecure":   x509util.TemplateData{"CR": csr},
	}
	var buf bytes.Buffer
	if err := p.tmpl.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("executing certificate template: %w", err)
	}
	var c x509util.Certificate
	if err := json.Unmarshal(buf.Bytes(), &c); err != nil {
		return nil, fmt.Errorf("certificate template produced invalid JSON: %w", err)
	}
	c.PublicKey = csr.PublicKey
	c.PublicKeyAlgorithm = csr.PublicKeyAlgorithm
	return c.GetCertificate(), nil
}

// enforceClient checks the rendered template against what zbca always
// requires of a client certificate.
func enforceClient(t *x509.Certificate) error {
	switch {
	case t.IsCA:
		return fmt.Errorf("template makes a CA certificate")
	case t.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != 0:
		return fmt.Errorf("template grants certSign or cRLSign")
	case t.KeyUsage&x509.KeyUsageDigitalSignature == 0:
		return fmt.Errorf("template lacks keyUsage digitalSignature")
	case t.Subject.CommonName == "" && len(t.URIs) == 0:
		return fmt.Errorf("template yields neither a subject common name nor a URI")
	}
	hasClientAuth := false
	for _, u := range t.ExtKeyUsage {
		if u == x509.ExtKeyUsageClientAuth {
			hasClientAuth = true
		}
		if u == x509.ExtKeyUsageAny {
			return fmt.Errorf("template grants anyExtendedKeyUsage")
		}
	}
	if !hasClientAuth {
		return fmt.Errorf("template lacks extKeyUsage clientAuth")
	}
	return nil
}

// checkProfile renders the template once with sample data so that a broken
// operator template is refused at start, not at the first issuance.
func checkProfile(p *profile) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return err
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return err
	}
	t, err := p.render(csr, templateEnterprise{Username: "sample", Name: "样例有限公司", ID: "91350100M000100Y43", URI: EnterpriseURI("sample")},
		templateURLs{CRL: []string{"http://example/crl"}, OCSP: []string{"http://example/ocsp"}, CAIssuers: []string{"http://example/ca.crt"}})
	if err != nil {
		return err
	}
	if err := enforceClient(t); err != nil {
		return fmt.Errorf("certificate template: %w", err)
	}
	return nil
}
