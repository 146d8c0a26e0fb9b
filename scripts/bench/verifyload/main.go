// Command verifyload measures the verification API where wrk cannot:
//
//	verifyload prepare -data DIR -out bodies.txt [-n N]
//	    writes one POST /api/v1/verify body a line ({"certificate": PEM,
//	    "username": …}) for up to N client certificates of a filled data
//	    directory (scripts/bench/fill), for wrk (lua/verify.lua) and the
//	    modes below.
//	verifyload once -url https://127.0.0.1:P -key KEY -root root.pem -bodies bodies.txt -c 16
//	    sends every body once over c keep-alive connections: on a freshly
//	    started server every request is a first-seen certificate (parse,
//	    chain check, record lookup). Prints the rate and the latencies.
//	verifyload rate -url … -key KEY -root root.pem -bodies bodies.txt -rate 15000 -duration 20s -c 64
//	    open-loop load at a fixed rate; latency counts from when each
//	    request was due (no coordinated omission).
//
// Every mode is bounded (bodies, or rate × duration) and talks to the URL
// given, which the scripts set to 127.0.0.1.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zbca/zbca/scripts/bench/internal/benchenv"
	"github.com/zbca/zbca/store"
)

func main() {
	log.SetFlags(0)
	if len(os.Args) < 2 {
		log.Fatal("usage: verifyload prepare|once|rate [flags]")
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	data := fs.String("data", "", "filled data directory (prepare)")
	cfgp := fs.String("config", "", "zbca configuration file (prepare; optional, e.g. store: {driver: postgres, dsn_file: …})")
	out := fs.String("out", "bodies.txt", "output file (prepare)")
	n := fs.Int("n", 0, "at most this many certificates or bodies (0: all)")
	base := fs.String("url", "", "HTTPS base URL, https://127.0.0.1:PORT")
	key := fs.String("key", "", "API key")
	root := fs.String("root", "", "zbca root certificate (PEM), to trust the HTTPS listener")
	bodies := fs.String("bodies", "bodies.txt", "file of request bodies (once, rate)")
	conns := fs.Int("c", 16, "connections")
	rate := fs.Int("rate", 15000, "requests per second (rate)")
	dur := fs.Duration("duration", 20*time.Second, "how long (rate)")
	fs.Parse(os.Args[2:])
	switch os.Args[1] {
	case "prepare":
		prepare(*data, *cfgp, *out, *n)
	case "once":
		l := newLoader(*base, *key, *root, *conns)
		l.once(readBodies(*bodies, *n))
	case "rate":
		l := newLoader(*base, *key, *root, *conns)
		l.rate(readBodies(*bodies, *n), *rate, *dur)
	default:
		log.Fatalf("verifyload: unknown mode %q", os.Args[1])
	}
}

func prepare(dir, configPath, out string, n int) {
	ctx := context.Background()
	env, err := benchenv.Open(ctx, dir, configPath, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer env.Close()
	f, err := os.Create(out)
	if err != nil {
		log.Fatal(err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	count, after := 0, ""
	for n == 0 || count < n {
		list, err := env.Store.ListCertificates(ctx, store.CertFilter{Profile: store.ProfileClient, After: after, Limit: 1000})
		if err != nil {
			log.Fatal(err)
		}
		for _, c := range list {
			if n > 0 && count >= n {
				break
			}
			pemText := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.DER})
			if err := enc.Encode(map[string]string{"certificate": string(pemText), "username": c.Username}); err != nil {
				log.Fatal(err)
			}
			count++
			after = c.Serial
		}
		if len(list) < 1000 {
			break
		}
	}
	if err := w.Flush(); err != nil {
		log.Fatal(err)
	}
	f.Close()
	fmt.Printf("%d request bodies in %s\n", count, out)
}

func readBodies(path string, n int) [][]byte {
	b, err := os.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	var out [][]byte
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(l) > 0 {
			out = append(out, l)
		}
		if n > 0 && len(out) >= n {
			break
		}
	}
	if len(out) == 0 {
		log.Fatalf("verifyload: no bodies in %s", path)
	}
	return out
}

type loader struct {
	url, key string
	conns    int
	client   *http.Client
}

func newLoader(base, key, rootFile string, conns int) *loader {
	if !strings.HasPrefix(base, "https://127.0.0.1:") {
		log.Fatal("verifyload: -url must be https://127.0.0.1:PORT")
	}
	pemText, err := os.ReadFile(rootFile)
	if err != nil {
		log.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemText) {
		log.Fatalf("verifyload: no certificate in %s", rootFile)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	return &loader{url: base + "/api/v1/verify", key: key, conns: conns, client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// post sends one body and returns the answer's result ("" on error).
func (l *loader) post(body []byte) (string, error) {
	req, err := http.NewRequest(http.MethodPost, l.url, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+l.key)
	resp, err := l.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	var a struct {
		Result string `json:"result"`
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return "", err
	}
	return a.Result, nil
}

type tally struct {
	mu      sync.Mutex
	results map[string]int
	errs    int
	first   error
}

func (t *tally) add(res string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.errs++
		if t.first == nil {
			t.first = err
		}
		return
	}
	t.results[res]++
}

func (t *tally) String() string {
	s := fmt.Sprintf("results %v, %d errors", t.results, t.errs)
	if t.first != nil {
		s += fmt.Sprintf(" (first: %v)", t.first)
	}
	return s
}

// once sends every body once.
func (l *loader) once(bodies [][]byte) {
	lat := make([]time.Duration, len(bodies))
	t := &tally{results: map[string]int{}}
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range l.conns {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(bodies) {
					return
				}
				t0 := time.Now()
				res, err := l.post(bodies[i])
				lat[i] = time.Since(t0)
				t.add(res, err)
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	fmt.Printf("first-seen: %d requests in %.2fs: %.0f/s over %d connections; %s\n", len(bodies), el.Seconds(), float64(len(bodies))/el.Seconds(), l.conns, t)
	printLatency(lat, "latency")
}

// rate sends rate×dur requests, request i due at start + i/rate.
func (l *loader) rate(bodies [][]byte, rate int, dur time.Duration) {
	total := int(int64(rate) * int64(dur) / int64(time.Second))
	interval := float64(time.Second) / float64(rate)
	lat := make([]time.Duration, total)
	t := &tally{results: map[string]int{}}
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now().Add(50 * time.Millisecond)
	for c := range l.conns {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= total {
					return
				}
				due := start.Add(time.Duration(float64(i) * interval))
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				}
				res, err := l.post(bodies[(i+c*7919)%len(bodies)])
				lat[i] = time.Since(due)
				t.add(res, err)
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	fmt.Printf("fixed rate: %d requests in %.2fs: %.0f/s (target %d/s) over %d connections; %s\n", total, el.Seconds(), float64(total)/el.Seconds(), rate, l.conns, t)
	printLatency(lat, "latency (from due time)")
}

func printLatency(lat []time.Duration, what string) {
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(int(float64(len(lat))*p), len(lat)-1)] }
	r := func(d time.Duration) time.Duration {
		if d < 10*time.Millisecond {
			return d.Round(time.Microsecond)
		}
		return d.Round(100 * time.Microsecond)
	}
	fmt.Printf("%s: p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n", what, r(pct(0.50)), r(pct(0.90)), r(pct(0.99)), r(pct(0.999)), r(lat[len(lat)-1]))
}
