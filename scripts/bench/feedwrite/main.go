// Command feedwrite is a paced writer for scripts/bench/feed.sh: while it
// runs, a zbca serve commits a known number of unrelated writes per second
// (no certificate status changes), as logins and ACME clients do at a
// reporting deadline:
//
//   - -nonces per second ACME requests that each spend one nonce: an
//     existing account's newAccount with onlyReturnExisting (RFC 8555
//     §7.3.1), signed with its key, so the server checks the signature,
//     records the nonce as used (one INSERT, one commit) and answers the
//     account. New nonces come in the answers' Replay-Nonce headers
//     (issuing one writes nothing);
//   - -logins per second successful password logins (POST /api/v1/eab:
//     the login's begin and finish commits, and the EAB key it makes; an
//     argon2id hash, tens of milliseconds of CPU each).
//
// The requests are started on a fixed schedule (open loop, at most -inflight
// at once; a request that cannot start on time is counted as late, not
// queued), so the write rate does not follow the server's speed.
//
//	feedwrite -url https://127.0.0.1:8443 -root root.crt -user 'w%02d' -accounts 8 -nonces 190 -logins 5 -d 30s
//
// The accounts (-accounts enterprises with the password -password, made
// beforehand) are set up first with a login each; then it runs for -d and
// prints one line: the requests answered per kind and their rates.
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
	base := flag.String("url", "https://127.0.0.1:8443", "HTTPS listener")
	rootFile := flag.String("root", "", "root certificate PEM")
	userFmt := flag.String("user", "w%02d", "username format (account index)")
	nAcct := flag.Int("accounts", 8, "enterprises (and ACME accounts) used in turn")
	password := flag.String("password", "bench-password-123", "password of those enterprises")
	nonceRate := flag.Float64("nonces", 190, "nonce-spending ACME requests per second")
	loginRate := flag.Float64("logins", 5, "successful password logins per second")
	inflight := flag.Int("inflight", 64, "requests in flight at most")
	dur := flag.Duration("d", 30*time.Second, "duration")
	flag.Parse()
	log.SetFlags(0)

	pem, err := os.ReadFile(*rootFile)
	if err != nil {
		log.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: *inflight,
	}}
	ctx, cancel := context.WithTimeout(context.Background(), *dur+2*time.Minute)
	defer cancel()

	login := func(user string) (*acme.ExternalAccountBinding, error) {
		body, _ := json.Marshal(map[string]string{"username": user, "password": *password})
		resp, err := hc.Post(*base+"/api/v1/eab", "application/json", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusCreated {
			return nil, fmt.Errorf("login: %d %s", resp.StatusCode, b)
		}
		var raw map[string]string
		_ = json.Unmarshal(b, &raw)
		key, err := base64.RawURLEncoding.DecodeString(raw["hmac_key"])
		return &acme.ExternalAccountBinding{KID: raw["kid"], Key: key}, err
	}

	// Set-up: one ACME account per enterprise (not counted).
	clients := make([]*acme.Client, *nAcct)
	for i := range clients {
		e, err := login(fmt.Sprintf(*userFmt, i))
		if err != nil {
			log.Fatalf("feedwrite: set-up: %v", err)
		}
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		cl := &acme.Client{Key: k, DirectoryURL: *base + "/acme/directory", HTTPClient: hc}
		if _, err := cl.Register(ctx, &acme.Account{ExternalAccountBinding: e}, acme.AcceptTOS); err != nil {
			log.Fatalf("feedwrite: set-up: %v", err)
		}
		clients[i] = cl
	}
	log.Printf("feedwrite: set up %d accounts; writing for %s", len(clients), *dur)

	type kind struct {
		name      string
		rate      float64
		ok, fail  atomic.Int64
		late      atomic.Int64
		mu        sync.Mutex
		latencies []time.Duration
		do        func(n int64) error
	}
	kinds := []*kind{
		{name: "nonces", rate: *nonceRate, do: func(n int64) error {
			_, err := clients[n%int64(len(clients))].GetReg(ctx, "")
			return err
		}},
		{name: "logins", rate: *loginRate, do: func(n int64) error {
			_, err := login(fmt.Sprintf(*userFmt, n%int64(len(clients))))
			return err
		}},
	}
	slots := make(chan struct{}, *inflight)
	start := time.Now()
	deadline := start.Add(*dur)
	var wg sync.WaitGroup
	for _, k := range kinds {
		if k.rate <= 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			every := time.Duration(float64(time.Second) / k.rate)
			var reqs sync.WaitGroup
			defer reqs.Wait()
			for n := int64(0); ; n++ {
				due := start.Add(time.Duration(n) * every)
				if !due.Before(deadline) {
					return
				}
				time.Sleep(time.Until(due))
				select {
				case slots <- struct{}{}:
				default:
					k.late.Add(1)
					continue
				}
				reqs.Add(1)
				go func() {
					defer reqs.Done()
					defer func() { <-slots }()
					t0 := time.Now()
					if err := k.do(n); err != nil {
						if k.fail.Add(1) <= 3 {
							log.Printf("feedwrite: %s: %v", k.name, err)
						}
						return
					}
					d := time.Since(t0)
					k.ok.Add(1)
					k.mu.Lock()
					k.latencies = append(k.latencies, d)
					k.mu.Unlock()
				}()
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	for _, k := range kinds {
		sort.Slice(k.latencies, func(i, j int) bool { return k.latencies[i] < k.latencies[j] })
		pct := func(p float64) time.Duration {
			if len(k.latencies) == 0 {
				return 0
			}
			return k.latencies[int(p*float64(len(k.latencies)-1))].Round(time.Microsecond)
		}
		fmt.Printf("%s=%d rate_%s=%.1f/s errors_%s=%d late_%s=%d p50_%s=%s p99_%s=%s ",
			k.name, k.ok.Load(), k.name, float64(k.ok.Load())/el.Seconds(), k.name, k.fail.Load(),
			k.name, k.late.Load(), k.name, pct(0.5), k.name, pct(0.99))
	}
	fmt.Printf("duration=%s\n", el.Round(time.Millisecond))
}
