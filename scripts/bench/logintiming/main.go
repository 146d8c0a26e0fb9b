// Command logintiming measures what an attacker measures (issue 15, point
// 6): the answer time of a wrong password for an unknown username, an
// argon2id account and an account still holding its imported bcrypt hash,
// through POST /api/v1/eab of a running zbca serve
// (scripts/bench/login-timing.sh starts one). The three kinds are tried
// in turn, -n times each, over one kept-alive connection, and for each the
// median, minimum and maximum are printed.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

func main() {
	base := flag.String("url", "https://localhost:8443", "HTTPS listener")
	rootFile := flag.String("root", "", "root certificate PEM")
	n := flag.Int("n", 50, "tries per kind")
	users := flag.String("users", "unknown=nobody-here,argon2id=argon-acct,bcrypt=bcrypt-acct", "kind=username, comma-separated")
	flag.Parse()

	pem, err := os.ReadFile(*rootFile)
	if err != nil {
		log.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 1}}

	type kind struct{ name, user string }
	var kinds []kind
	for _, kv := range strings.Split(*users, ",") {
		k, u, ok := strings.Cut(kv, "=")
		if !ok {
			log.Fatalf("bad -users entry %q", kv)
		}
		kinds = append(kinds, kind{k, u})
	}
	try := func(user string) time.Duration {
		body, _ := json.Marshal(map[string]string{"username": user, "password": "wrong-password-123"})
		start := time.Now()
		resp, err := hc.Post(*base+"/api/v1/eab", "application/json", bytes.NewReader(body))
		if err != nil {
			log.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if resp.StatusCode != http.StatusUnauthorized {
			log.Fatalf("%s: %d %s", user, resp.StatusCode, b)
		}
		return d
	}
	for _, k := range kinds {
		try(k.user) // warm-up: TLS handshake, caches
	}
	times := make([][]time.Duration, len(kinds))
	for range *n {
		for i, k := range kinds {
			times[i] = append(times[i], try(k.user))
		}
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/1e6) }
	fmt.Printf("%-10s %6s %9s %7s %7s\n", "kind", "tries", "median", "min", "max")
	for i, k := range kinds {
		s := slices.Clone(times[i])
		slices.Sort(s)
		fmt.Printf("%-10s %6d %6s ms %7s %7s\n", k.name, len(s), ms(s[len(s)/2]), ms(s[0]), ms(s[len(s)-1]))
	}
}
