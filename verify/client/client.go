// Package client is the Go side of zbca's verification API, for
// submission sites written in Go: a Client that asks zbca about a client
// certificate, and an http middleware that asks about each request's TLS
// client certificate and puts the answer in the request's context.
//
// It depends on the standard library only; it does not import zbca's
// server packages, so a submission site can vendor it alone.
//
//	vc := client.New("https://ca.example:8443", os.Getenv("ZBCA_API_KEY"), httpClientTrustingZBCA)
//	mux.Handle("/report/", (&client.Middleware{Client: vc}).Wrap(reportHandler))
//	// in reportHandler: r := client.FromContext(req.Context()); r.Enterprise.Username
package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Result is zbca's answer (the JSON of POST /api/v1/verify).
type Result struct {
	// Result is one of valid, expiring, expired, not_yet_valid, revoked,
	// untrusted, mismatch, malformed.
	Result string `json:"result"`
	// Valid is true for valid and expiring: the user may log in.
	Valid      bool `json:"valid"`
	Enterprise *struct {
		Username string `json:"username"`
		Name     string `json:"name"`
		ID       string `json:"id"`
	} `json:"enterprise,omitempty"`
	ClaimedUsername  string    `json:"claimed_username,omitempty"`
	Serial           string    `json:"serial,omitempty"`
	NotBefore        time.Time `json:"not_before,omitzero"`
	NotAfter         time.Time `json:"not_after,omitzero"`
	DaysLeft         *int      `json:"days_left,omitempty"`
	RevokedAt        time.Time `json:"revoked_at,omitzero"`
	RevocationReason string    `json:"revocation_reason,omitempty"`
	// Message is what to show the user: Chinese and English.
	Message struct {
		ZH string `json:"zh"`
		EN string `json:"en"`
	} `json:"message"`
	Detail string `json:"detail,omitempty"`
}

// Client asks zbca's verification API. Safe for concurrent use.
type Client struct {
	url  string
	key  string
	http *http.Client
	// TTL is how long an answer is reused for the same certificate and
	// username (default 10 s): a revocation reaches this site within it.
	// Negative: no cache.
	TTL time.Duration
	// Now is the clock (tests); default time.Now.
	Now func() time.Time

	mu    sync.Mutex
	cache map[cacheKey]cached
}

type cacheKey struct {
	fp   [32]byte
	user string
}

type cached struct {
	r  *Result
	at time.Time
}

// maxCached bounds the cache; it is emptied when full.
const maxCached = 10000

// New returns a client of the zbca at baseURL (its HTTPS listener, e.g.
// "https://ca.example:8443") with the site's API key. hc must trust
// zbca's TLS certificate (zbca's root, /pki/root.pem); nil: a client with
// the system roots and a 5-second timeout.
func New(baseURL, apiKey string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Second}
	}
	return &Client{url: strings.TrimRight(baseURL, "/") + "/api/v1/verify", key: apiKey, http: hc}
}

// APIError is a refusal of the API itself (401 wrong key, 400, 413, 5xx),
// not a verdict on the certificate.
type APIError struct {
	Status int
	Detail string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("zbca verification API: %d %s", e.Status, e.Detail)
}

// Verify asks about a certificate (the leaf first; the rest of the chain
// is not needed) and the username logging in ("" for none).
func (c *Client) Verify(ctx context.Context, chain []*x509.Certificate, username string) (*Result, error) {
	if len(chain) == 0 {
		return nil, errors.New("no client certificate")
	}
	leaf := chain[0]
	k := cacheKey{fp: sha256.Sum256(leaf.Raw), user: username}
	now := c.now()
	ttl := c.TTL
	if ttl == 0 {
		ttl = 10 * time.Second
	}
	if ttl > 0 {
		c.mu.Lock()
		e, ok := c.cache[k]
		c.mu.Unlock()
		if ok && now.Sub(e.at) < ttl && !now.Before(e.at) {
			return e.r, nil
		}
	}
	body, err := json.Marshal(map[string]string{
		"certificate": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})),
		"username":    username,
	})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.key)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("zbca verification API: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("zbca verification API: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var p struct {
			Detail string `json:"detail"`
		}
		_ = json.Unmarshal(b, &p)
		return nil, &APIError{Status: resp.StatusCode, Detail: p.Detail}
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("zbca verification API: decoding the answer: %w", err)
	}
	if ttl > 0 {
		c.mu.Lock()
		if c.cache == nil || len(c.cache) >= maxCached {
			c.cache = make(map[cacheKey]cached)
		}
		c.cache[k] = cached{r: &r, at: now}
		c.mu.Unlock()
	}
	return &r, nil
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}
