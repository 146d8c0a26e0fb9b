package server

import (
	"crypto/tls"
	"testing"
)

// TestHTTPSNoCBC: a TLS 1.2 client that offers only CBC-SHA suites (what
// Go's defaults would still accept) gets no connection; one with an AEAD
// suite, and TLS 1.3, do.
func TestHTTPSNoCBC(t *testing.T) {
	s, _ := newTestServer(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", httpsTLSConfig(s.opts.CA.TLSCertificate))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	dial := func(max uint16, suites ...uint16) error {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, MaxVersion: max, CipherSuites: suites})
		if err == nil {
			c.Close()
		}
		return err
	}
	for _, cbc := range []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
		tls.TLS_RSA_WITH_AES_128_CBC_SHA,
		tls.TLS_RSA_WITH_AES_128_GCM_SHA256, // no forward secrecy
	} {
		if err := dial(tls.VersionTLS12, cbc); err == nil {
			t.Errorf("TLS 1.2 with %s was accepted", tls.CipherSuiteName(cbc))
		}
	}
	if err := dial(tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256); err != nil {
		t.Errorf("TLS 1.2 with AES-GCM: %v", err)
	}
	if err := dial(tls.VersionTLS13); err != nil {
		t.Errorf("TLS 1.3: %v", err)
	}
	if err := dial(tls.VersionTLS11); err == nil {
		t.Error("TLS 1.1 was accepted")
	}
}
