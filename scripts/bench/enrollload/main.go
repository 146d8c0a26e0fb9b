// Command enrollload measures enrollment over HTTPS against a running
// zbca serve (scripts/bench/enroll.sh starts one):
//
//	-mode login: successful password logins per second (POST /api/v1/eab)
//	             with -c concurrent clients;
//	-mode acme:  complete ACME issuances per second (newOrder, finalize,
//	             certificate download) with -c concurrent clients, each its
//	             own enterprise and account, with golang.org/x/crypto/acme.
//
// It stops by itself after -d.
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"
)

func main() {
	base := flag.String("url", "https://localhost:8443", "HTTPS listener")
	rootFile := flag.String("root", "", "root certificate PEM")
	mode := flag.String("mode", "login", "login or acme")
	conc := flag.Int("c", 32, "concurrent clients")
	dur := flag.Duration("d", 20*time.Second, "duration")
	userFmt := flag.String("user", "bench%04d", "username format (enterprise index)")
	perClient := flag.Int("enterprises", 1, "acme mode: enterprises (and accounts) per client, used in turn, so that each stays within the daily limit as real enterprises do")
	password := flag.String("password", "bench-password-123", "password of every bench enterprise")
	accountsFile := flag.String("accounts", "", "acme mode: a file of the accounts set up (key and URL): read if it exists, written after the set-up otherwise, so that runs against copies of one database (and the same listener address) skip the set-up")
	flag.Parse()

	pem, err := os.ReadFile(*rootFile)
	if err != nil {
		log.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: *conc * 2,
	}}
	ctx, cancel := context.WithTimeout(context.Background(), *dur+2*time.Minute)
	defer cancel()

	var ok, fail atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	record := func(d time.Duration, err error) {
		if err != nil {
			if fail.Add(1) <= 5 {
				log.Printf("error: %v", err)
			}
			return
		}
		ok.Add(1)
		mu.Lock()
		lat = append(lat, d)
		mu.Unlock()
	}
	eab := func(user string) (*acme.ExternalAccountBinding, error) {
		body, _ := json.Marshal(map[string]string{"username": user, "password": *password})
		resp, err := hc.Post(*base+"/api/v1/eab", "application/json", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusCreated {
			return nil, fmt.Errorf("eab: %d %s", resp.StatusCode, b)
		}
		var k struct{ KID, HMACKey string }
		var raw map[string]string
		_ = json.Unmarshal(b, &raw)
		k.KID, k.HMACKey = raw["kid"], raw["hmac_key"]
		key, err := base64.RawURLEncoding.DecodeString(k.HMACKey)
		return &acme.ExternalAccountBinding{KID: k.KID, Key: key}, err
	}

	// Set-up (not measured): one ACME account per client.
	// clients[i][j] is client i's account for enterprise i*perClient+j.
	clients := make([][]*acme.Client, *conc)
	if *mode == "acme" && *accountsFile != "" {
		if saved, err := loadAccounts(*accountsFile, *conc, *perClient, *base, hc); err == nil {
			clients = saved
			log.Printf("read %d accounts from %s", *conc**perClient, *accountsFile)
		} else if !os.IsNotExist(err) {
			log.Fatal(err)
		}
	}
	if *mode == "acme" && clients[0] == nil {
		var swg sync.WaitGroup
		var setupErr atomic.Value
		for i := range clients {
			clients[i] = make([]*acme.Client, *perClient)
			swg.Add(1)
			go func() {
				defer swg.Done()
				for j := range clients[i] {
					e, err := eab(fmt.Sprintf(*userFmt, i**perClient+j))
					if err != nil {
						setupErr.Store(err)
						return
					}
					k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
					cl := &acme.Client{Key: k, DirectoryURL: *base + "/acme/directory", HTTPClient: hc}
					if _, err := cl.Register(ctx, &acme.Account{ExternalAccountBinding: e}, acme.AcceptTOS); err != nil {
						setupErr.Store(err)
						return
					}
					clients[i][j] = cl
				}
			}()
		}
		swg.Wait()
		if err := setupErr.Load(); err != nil {
			log.Fatal(err)
		}
		log.Printf("set up %d accounts", *conc**perClient)
		if *accountsFile != "" {
			if err := saveAccounts(*accountsFile, clients); err != nil {
				log.Fatal(err)
			}
		}
	}
	start := time.Now()
	deadline := start.Add(*dur)
	var wg sync.WaitGroup
	for i := 0; i < *conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(deadline); n++ {
				t0 := time.Now()
				switch *mode {
				case "login":
					_, err := eab(fmt.Sprintf(*userFmt, i))
					record(time.Since(t0), err)
				case "acme":
					j := n % *perClient
					cl, user := clients[i][j], fmt.Sprintf(*userFmt, i**perClient+j)
					o, err := cl.AuthorizeOrder(ctx, []acme.AuthzID{{Type: "enterprise", Value: user}})
					if err == nil {
						k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
						csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
						_, _, err = cl.CreateOrderCert(ctx, o.FinalizeURL, csr, true)
					}
					record(time.Since(t0), err)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(p*float64(len(lat)-1))]
	}
	fmt.Printf("mode=%s clients=%d duration=%s ok=%d errors=%d rate=%.1f/s p50=%s p99=%s\n",
		*mode, *conc, el.Round(time.Millisecond), ok.Load(), fail.Load(), float64(ok.Load())/el.Seconds(),
		pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond))
}
