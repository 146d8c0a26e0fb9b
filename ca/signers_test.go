package ca

import (
	"crypto"
	"reflect"
	"testing"
)

// TestCRLIssuerHandsOutNoKey: what the revocation side gets of a CA (root
// and issuing keys included) signs CRLs and OCSP responses only: no
// exported field or method gives the crypto.Signer, which could sign a
// certificate.
func TestCRLIssuerHandsOutNoKey(t *testing.T) {
	signer := reflect.TypeOf((*crypto.Signer)(nil)).Elem()
	typ := reflect.TypeOf(CRLIssuer{})
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.IsExported() && (f.Type == signer || f.Type.Implements(signer)) {
			t.Errorf("exported field %s is a crypto.Signer", f.Name)
		}
	}
	for i := range typ.NumMethod() {
		m := typ.Method(i)
		for j := range m.Type.NumOut() {
			if out := m.Type.Out(j); out == signer || out.Implements(signer) {
				t.Errorf("method %s returns a crypto.Signer", m.Name)
			}
		}
	}
}
