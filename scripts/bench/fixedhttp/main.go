// Command fixedhttp is a plain Go HTTP server answering every request with
// the same fixed octets: the ceiling of net/http on this machine, measured
// in the same run as zbca.
//
//	fixedhttp 127.0.0.1:PORT          # 1,000 octets (about an OCSP response with its signer certificate)
//	fixedhttp -tls 127.0.0.1:PORT     # HTTPS (a throwaway P-256 certificate), reading the request
//	                                  # body and answering a 500-octet JSON text (about a verification answer)
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"io"
	"log"
	"math/big"
	"net/http"
	"strconv"
	"time"
)

func main() {
	useTLS := flag.Bool("tls", false, "serve HTTPS and answer JSON")
	flag.Parse()
	addr := flag.Arg(0)
	if !*useTLS {
		body := make([]byte, 1000)
		log.Fatal(http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h["Content-Type"] = []string{"application/ocsp-response"}
			h["Content-Length"] = []string{strconv.Itoa(len(body))}
			w.Write(body)
		})))
	}
	body := []byte(`{"result":"valid","valid":true,"enterprise":{"username":"bench","name":"bench","id":""},"serial":"0123456789abcdef0123456789abcdef","not_after":"2029-11-26T00:00:00Z","days_left":1095,"message":{"zh":"证书有效","en":"The certificate is valid."}}`)
	for len(body) < 500 {
		body = append(body, ' ')
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Addr: addr, TLSConfig: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			h := w.Header()
			h["Content-Type"] = []string{"application/json"}
			h["Content-Length"] = []string{strconv.Itoa(len(body))}
			w.Write(body)
		})}
	log.Fatal(srv.ListenAndServeTLS("", ""))
}
