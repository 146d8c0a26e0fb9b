// Command ocspload measures the OCSP responder where wrk cannot:
//
//	ocspload rate   -url http://127.0.0.1:P -paths get.txt -rate 20000 -duration 20s
//	    open-loop load at a fixed request rate over keep-alive connections;
//	    latency counts from when each request was due, not when it was sent
//	    (no coordinated omission, as wrk2 does), so a stall shows up.
//	ocspload revoke -url http://127.0.0.1:P -admin http://127.0.0.1:A -token FILE -probes probe.txt
//	    revokes certificates through the admin API and times until a GET of
//	    their OCSP response says revoked.
//	ocspload ready  -url http://127.0.0.1:P -admin http://127.0.0.1:A -probes probe.txt -since NANOS
//	    waits until /readyz is 200 and an OCSP GET gets a successful answer,
//	    and prints the time since NANOS (unix nanoseconds, taken before start).
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ocsp"
)

func main() {
	log.SetFlags(0)
	if len(os.Args) < 2 {
		log.Fatal("usage: ocspload rate|revoke|ready [flags]")
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	base := fs.String("url", "", "public HTTP base URL, http://127.0.0.1:PORT")
	admin := fs.String("admin", "", "admin base URL")
	token := fs.String("token", "", "admin token file")
	paths := fs.String("paths", "", "file of GET paths (rate)")
	probes := fs.String("probes", "", "probe.txt from ocspreq (revoke, ready)")
	rate := fs.Int("rate", 20000, "requests per second (rate)")
	dur := fs.Duration("duration", 20*time.Second, "how long (rate)")
	conns := fs.Int("conns", 64, "connections (rate)")
	n := fs.Int("n", 5, "certificates to revoke (revoke)")
	since := fs.Int64("since", 0, "start time in unix nanoseconds (ready)")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after (ready)")
	fs.Parse(os.Args[2:])
	u, err := url.Parse(*base)
	if err != nil || u.Host == "" {
		log.Fatal("ocspload: -url http://HOST:PORT is required")
	}
	switch os.Args[1] {
	case "rate":
		runRate(u.Host, readLines(*paths), *rate, *dur, *conns)
	case "revoke":
		runRevoke(*base, *admin, *token, readProbes(*probes), *n)
	case "ready":
		runReady(*base, *admin, readProbes(*probes), *since, *timeout)
	default:
		log.Fatalf("ocspload: unknown mode %q", os.Args[1])
	}
}

func readLines(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	return strings.Fields(string(b))
}

type probe struct{ serial, path string }

func readProbes(path string) []probe {
	b, err := os.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	var out []probe
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		s, p, ok := strings.Cut(l, "\t")
		if ok {
			out = append(out, probe{s, p})
		}
	}
	return out
}

// runRate sends len(total) = rate×dur requests, request i due at
// start + i/rate, over conns keep-alive connections.
func runRate(host string, paths []string, rate int, dur time.Duration, conns int) {
	if len(paths) == 0 {
		log.Fatal("ocspload: no paths")
	}
	total := int64(rate) * int64(dur) / int64(time.Second)
	interval := float64(time.Second) / float64(rate)
	lat := make([]time.Duration, total)
	var next, bad, errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now().Add(50 * time.Millisecond)
	for c := range conns {
		wg.Go(func() {
			cn := dial(host)
			defer func() { cn.c.Close() }()
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				due := start.Add(time.Duration(float64(i) * interval))
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				}
				ok, err := cn.get(paths[(int(i)+c*7919)%len(paths)])
				if err != nil {
					errs.Add(1)
					cn.c.Close()
					cn = dial(host)
				} else if !ok {
					bad.Add(1)
				}
				lat[i] = time.Since(due)
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(int(float64(len(lat))*p), len(lat)-1)] }
	fmt.Printf("requests %d in %.2fs: %.0f/s (target %d/s), %d not successful OCSP, %d errors\n",
		total, el.Seconds(), float64(total)/el.Seconds(), rate, bad.Load(), errs.Load())
	fmt.Printf("latency (from due time): p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
		r(pct(0.50)), r(pct(0.90)), r(pct(0.99)), r(pct(0.999)), r(lat[len(lat)-1]))
}

func r(d time.Duration) time.Duration {
	if d < 10*time.Millisecond {
		return d.Round(time.Microsecond)
	}
	return d.Round(100 * time.Microsecond)
}

type conn struct {
	c    net.Conn
	br   *bufio.Reader
	host string
	buf  []byte
}

func dial(host string) *conn {
	c, err := net.Dial("tcp", host)
	if err != nil {
		log.Fatal(err)
	}
	return &conn{c: c, br: bufio.NewReaderSize(c, 8192), host: host}
}

// get sends one GET and reads the answer; ok is an HTTP 200 carrying a
// successful OCSPResponse (responseStatus 0).
func (c *conn) get(path string) (ok bool, err error) {
	c.buf = append(c.buf[:0], "GET "...)
	c.buf = append(c.buf, path...)
	c.buf = append(c.buf, " HTTP/1.1\r\nHost: "...)
	c.buf = append(c.buf, c.host...)
	c.buf = append(c.buf, "\r\n\r\n"...)
	if _, err := c.c.Write(c.buf); err != nil {
		return false, err
	}
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return false, err
	}
	status200 := bytes.HasPrefix(line, []byte("HTTP/1.1 200"))
	length := -1
	for {
		h, err := c.br.ReadSlice('\n')
		if err != nil {
			return false, err
		}
		if len(h) <= 2 {
			break
		}
		if k, v, found := bytes.Cut(h, []byte(":")); found && strings.EqualFold(string(k), "content-length") {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if length < 0 {
		return false, fmt.Errorf("no content-length")
	}
	body, err := c.br.Peek(min(length, 8))
	if err != nil {
		return false, err
	}
	// OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED, ... }: after
	// the outer header (2 or more octets), 0a 01 00 is "successful".
	ok = status200 && len(body) >= 5 && (bytes.Contains(body, []byte{0x0a, 0x01, 0x00}))
	_, err = c.br.Discard(length)
	return ok, err
}

// status GETs path and returns the certificate status in the answer.
func status(base, path string) (int, error) {
	resp, err := http.Get(base + path)
	if err != nil {
		return -1, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1, err
	}
	if resp.StatusCode != 200 {
		return -1, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	o, err := ocsp.ParseResponse(b, nil)
	if err != nil {
		return -1, err
	}
	return o.Status, nil
}

func runRevoke(base, admin, tokenFile string, probes []probe, n int) {
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		log.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))
	var delays []time.Duration
	for _, p := range probes {
		if len(delays) == n {
			break
		}
		if st, err := status(base, p.path); err != nil || st != ocsp.Good {
			continue // already revoked by an earlier run
		}
		start := time.Now()
		var apiTook time.Duration
		var apiErr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			req, _ := http.NewRequest(http.MethodPost, admin+"/admin/v1/certificates/"+p.serial+"/revoke", strings.NewReader(`{"reason":"keyCompromise"}`))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					err = fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
				}
			}
			apiTook, apiErr = time.Since(start), err
		}()
		var d time.Duration
		for {
			st, err := status(base, p.path)
			if err == nil && st == ocsp.Revoked {
				d = time.Since(start)
				break
			}
			if time.Since(start) > 10*time.Second {
				log.Fatalf("ocspload: %s not revoked after 10s", p.serial)
			}
			time.Sleep(time.Millisecond)
		}
		<-done
		if apiErr != nil {
			log.Fatalf("ocspload: revoking %s: %v", p.serial, apiErr)
		}
		fmt.Printf("revoked %s: admin API answered in %s, OCSP GET said revoked after %s\n", p.serial, r(apiTook), r(d))
		delays = append(delays, d)
	}
	if len(delays) == 0 {
		log.Fatal("ocspload: no active probe left")
	}
	slices.Sort(delays)
	fmt.Printf("revoke → OCSP revoked: median %s, max %s over %d revocations\n", r(delays[len(delays)/2]), r(delays[len(delays)-1]), len(delays))
}

func runReady(base, admin string, probes []probe, since int64, timeout time.Duration) {
	start := time.Unix(0, since)
	cl := &http.Client{Timeout: time.Second}
	readyAt := time.Duration(0)
	for time.Since(start) < timeout {
		if readyAt == 0 {
			if resp, err := cl.Get(admin + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					readyAt = time.Since(start)
				}
			}
		}
		if readyAt != 0 {
			if st, err := status(base, probes[len(probes)-1].path); err == nil && st >= 0 {
				fmt.Printf("start to serving: /readyz 200 after %s, OCSP GET answered after %s\n", r(readyAt), r(time.Since(start)))
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	log.Fatalf("ocspload: not serving after %s", timeout)
}
