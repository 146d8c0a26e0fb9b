package revocation

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"golang.org/x/crypto/ocsp"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/config"
	"github.com/zbca/zbca/internal/lifecycle"
	"github.com/zbca/zbca/internal/ocspder"
	"github.com/zbca/zbca/store"
)

// pgSchemaDSN makes a schema of its own on the test PostgreSQL
// (ZBCA_TEST_PG_DSN, or the local one with trust auth), dropped after the
// test, and returns a DSN that uses it. Without PostgreSQL the test is
// skipped, or fails in CI.
func pgSchemaDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("ZBCA_TEST_PG_DSN")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx := context.Background()
	admin, err := sql.Open("pgx", dsn)
	if err == nil {
		err = admin.PingContext(ctx)
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL: %v", err)
		}
		t.Skipf("PostgreSQL not reachable: %v", err)
	}
	t.Cleanup(func() { admin.Close() })
	var b [8]byte
	rand.Read(b[:])
	schema := "zbca_test_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.ExecContext(context.Background(), `DROP SCHEMA `+schema+` CASCADE`) })
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "search_path=" + schema
}

// node is one zbca server's revocation side on a shared database.
type node struct {
	st    *store.SQL
	src   *nodeSource
	a     *ca.Authority
	pub   *Publisher
	resp  *Responder
	feed  *Feed
	svc   *Service
	tasks *lifecycle.Group
}

// nodeSource is a node's store, whose notifications a test can drop (as a
// flaky network or a full notification queue would) and whose listener
// tells when it is connected.
type nodeSource struct {
	*store.SQL
	drop  atomic.Bool
	ready chan struct{}
	once  sync.Once
}

func (s *nodeSource) Listen(ctx context.Context, fn func(store.Change)) {
	s.SQL.Listen(ctx, func(c store.Change) {
		if c.Kind == store.ChangeFeed && s.drop.Load() {
			return
		}
		fn(c)
		if c.Kind == store.ChangeResync {
			s.once.Do(func() { close(s.ready) })
		}
	})
}

// nodeOptions varies a test node: its clock and its feed's poll.
type nodeOptions struct {
	now  func() time.Time
	poll time.Duration
}

// newNodes starts two nodes on one PostgreSQL schema, each with its own
// store handle, CA handle, OCSP table, CRL publisher and status feed, and
// waits until both listen.
func newNodes(t *testing.T, shards int, opts [2]nodeOptions) (one, two *node) {
	dsn := pgSchemaDSN(t)
	ctx := context.Background()
	dir := t.TempDir()
	c := config.Default()
	c.DataDir = dir
	c.CA.CRLShards = shards
	c.Resolve()
	var nodes [2]*node
	for i := range nodes {
		st, err := store.Open(ctx, store.Options{Driver: "postgres", DSN: dsn, Now: opts[i].now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		o := ca.Options{Dir: filepath.Join(dir, "ca"), Config: c.CA, PublicURL: "http://pki.test", TLSHosts: c.HTTPS.Hosts, Store: st, Now: opts[i].now}
		var a *ca.Authority
		if i == 0 {
			a, err = ca.Init(ctx, o)
		} else {
			a, err = ca.Open(ctx, o)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		src := &nodeSource{SQL: st, ready: make(chan struct{})}
		stack, err := NewStack(StackOptions{Store: src, Notified: true, Poll: opts[i].poll,
			OCSP: ResponderOptions{Issuers: a.IssuingCAs(), Root: a.RootCRLIssuer(), Delegated: a.OCSPResponder, Now: opts[i].now},
			Publisher: PublisherOptions{Delay: 200 * time.Millisecond, Interval: time.Hour, Validity: 2 * time.Hour,
				Shards: a.CRLShards(), PublicURL: "http://pki.test"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := stack.Load(ctx); err != nil {
			t.Fatal(err)
		}
		g := lifecycle.New(ctx, nil)
		stack.Start(g)
		t.Cleanup(func() { g.Stop(5 * time.Second) })
		select {
		case <-src.ready:
		case <-time.After(5 * time.Second):
			t.Fatal("node not listening after 5 s")
		}
		nodes[i] = &node{st: st, src: src, a: a, pub: stack.CRL, resp: stack.OCSP, feed: stack.Feed, svc: stack.Service, tasks: g}
	}
	if err := nodes[0].st.AddEnterprise(ctx, &store.Enterprise{Username: "acme", Name: "ACME", PasswordHash: "x"}, store.AuditEvent{Actor: "t", Action: "enterprise.add"}); err != nil {
		t.Fatal(err)
	}
	return nodes[0], nodes[1]
}

// ocspStatus asks n's responder about cert (issued by iss), asking again
// on tryLater (a store lookup slower than LookupTimeout on a busy machine)
// as clients do.
func ocspStatus(t *testing.T, n *node, cert, iss *x509.Certificate) int {
	t.Helper()
	for start := time.Now(); ; {
		rec := post(t, n.resp, ocspRequest(t, cert, iss, crypto.SHA1))
		if bytes.Equal(rec.Body.Bytes(), ocspder.TryLater) && time.Since(start) < 2*time.Second {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		r, err := ocsp.ParseResponseForCert(rec.Body.Bytes(), cert, iss)
		if err != nil {
			t.Fatal(err)
		}
		return r.Status
	}
}

// TestTwoNodesOnPostgres: a revocation made on one node is answered
// revoked by the other node's OCSP responder through its notification
// alone (the other node's safety-net poll is an hour), well within 1 s;
// the CRL is then published once, not by both nodes, and the other node
// serves it; with partitioned CRLs, its shards too.
func TestTwoNodesOnPostgres(t *testing.T) {
	t.Run("full CRL", func(t *testing.T) { testTwoNodes(t, 0) })
	t.Run("3 shards", func(t *testing.T) { testTwoNodes(t, 3) })
}

func testTwoNodes(t *testing.T, shards int) {
	ctx := context.Background()
	one, two := newNodes(t, shards, [2]nodeOptions{{}, {poll: time.Hour}})
	f := &fixture{st: one.st, a: one.a, pub: one.pub, resp: one.resp, feed: one.feed, svc: one.svc}
	crl0 := two.pub.Get(one.a.IssuingCAs()[0].Name).Number
	iss := one.a.Issuing()
	status := func(n *node, cert *x509.Certificate) int { return ocspStatus(t, n, cert, iss) }
	var delays []time.Duration
	for range 5 {
		leaf := f.issue(t)
		if s := status(two, leaf); s != ocsp.Good {
			t.Fatalf("node 2 before the revocation: status %d", s)
		}
		if _, err := one.svc.Revoke(ctx, leaf.SerialNumber.Text(16), KeyCompromise, "test", ByOperator); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for status(two, leaf) != ocsp.Revoked {
			if time.Since(start) > time.Second {
				t.Fatal("node 2 still not revoked after 1 s")
			}
			time.Sleep(2 * time.Millisecond)
		}
		delays = append(delays, time.Since(start))
	}
	sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
	t.Logf("revocation on node 1 → revoked on node 2: median %v, max %v", delays[2], delays[4])
	// Without the notification, node 2 would have had to poll: it does
	// not, so this bound proves the notification path.
	if delays[4] > 500*time.Millisecond {
		t.Errorf("slowest propagation %v", delays[4])
	}
	// Both nodes were woken for the CRL; the lock and the build time let
	// one build it. Wait for the publications to settle.
	name := one.a.IssuingCAs()[0].Name
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		p1, p2 := one.pub.Get(name), two.pub.Get(name)
		if p1.Entries == 5 && p2.Entries == 5 && p1.Number == p2.Number {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // a second publication would show now
	p1, p2 := one.pub.Get(name), two.pub.Get(name)
	if p1.Entries != 5 || p2.Entries != 5 || p1.Number != p2.Number {
		t.Fatalf("CRLs after the revocations: node 1 #%d with %d entries, node 2 #%d with %d", p1.Number, p1.Entries, p2.Number, p2.Entries)
	}
	// Five revocations 0–500 ms apart with a 50-ms gathering delay: at
	// most one CRL per revocation, and never one per node per revocation.
	if n := p1.Number - crl0; n > 5 {
		t.Errorf("%d CRLs published for 5 revocations on 2 nodes", n)
	}
	t.Logf("CRLs published for 5 revocations: %d", p1.Number-crl0)
	// The shards were published with the full CRL, and node 2 serves the
	// same ones.
	sum := 0
	for _, s := range one.pub.Shards(name) {
		s1, s2 := one.pub.Get(s), two.pub.Get(s)
		if s1 == nil || s2 == nil || s1.Number != s2.Number || s1.Entries != s2.Entries || !s1.BuiltAt.Equal(p1.BuiltAt) {
			t.Fatalf("shard %s: node 1 %+v, node 2 %+v", s, s1, s2)
		}
		sum += s1.Entries
	}
	if shards > 0 && sum != 5 {
		t.Errorf("%d entries in the shards for 5 revocations", sum)
	}
}

// TestClocksApartNotificationsLost: two nodes whose clocks are 10 minutes
// apart, and every feed notification dropped: a revocation on either node
// still reaches the other's OCSP answer and verification view within the
// safety-net poll. Nothing compares the clocks: the feed is numbered.
func TestClocksApartNotificationsLost(t *testing.T) {
	ctx := context.Background()
	ahead := func() time.Time { return time.Now().Add(10 * time.Minute) }
	const poll = 200 * time.Millisecond
	one, two := newNodes(t, 0, [2]nodeOptions{{now: ahead, poll: poll}, {poll: poll}})
	one.src.drop.Store(true)
	two.src.drop.Store(true)
	f := &fixture{st: one.st, a: one.a, pub: one.pub, resp: one.resp, feed: one.feed, svc: one.svc}
	iss := one.a.Issuing()
	for i, pair := range [][2]*node{{one, two}, {two, one}} {
		from, to := pair[0], pair[1]
		leaf := f.issue(t) // on node 1, whose clock is ahead
		serial := ca.SerialHex(leaf.SerialNumber)
		for start := time.Now(); ocspStatus(t, to, leaf, iss) != ocsp.Good; {
			if time.Since(start) > 2*poll+time.Second {
				t.Fatalf("pass %d: the issuance did not reach the other node", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if _, err := from.svc.Revoke(ctx, serial, KeyCompromise, "test", ByOperator); err != nil {
			t.Fatal(err)
		}
		// The revoking node: at once.
		if st, ok := from.feed.Status(ctx, serial); !ok || !st.Revoked {
			t.Fatalf("pass %d: the revoking node's verification view after Revoke: %+v ok=%v", i, st, ok)
		}
		start := time.Now()
		for {
			st, ok := to.feed.Status(ctx, serial)
			if ok && st.Revoked && ocspStatus(t, to, leaf, iss) == ocsp.Revoked {
				break
			}
			if time.Since(start) > poll+time.Second {
				t.Fatalf("pass %d: the other node still not revoked after %v (verification view %+v ok=%v)", i, time.Since(start), st, ok)
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Logf("pass %d: revoked on the other node after %v (poll %v, notifications dropped)", i, time.Since(start).Round(time.Millisecond), poll)
	}
	if one.feed.Applied() != two.feed.Applied() {
		t.Errorf("the nodes applied up to %d and %d", one.feed.Applied(), two.feed.Applied())
	}
}
