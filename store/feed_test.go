package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zbca/zbca/store"
)

// TestFeedConcurrentWriters: two stores on one database (two nodes on
// PostgreSQL, two processes on one SQLite file) issue and revoke at once,
// each transaction pausing between taking its number and committing, so
// that with numbers taken outside the writers' lock (a PostgreSQL
// sequence) a larger number would commit before a smaller one. A reader
// following the feed meanwhile, in small pages, must see 1, 2, 3 ... with
// nothing skipped or repeated, and end with every certificate's status.
func TestFeedConcurrentWriters(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "zbca.db")
		open := func() *store.SQL {
			s, err := store.Open(context.Background(), store.Options{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		a := open()
		testFeedConcurrent(t, a, open())
	})
	t.Run("postgres", func(t *testing.T) {
		a, b := openPGPair(t)
		testFeedConcurrent(t, a, b)
	})
}

func testFeedConcurrent(t *testing.T, a, b *store.SQL) {
	ctx := context.Background()
	restore := store.SetFeedHook(func() { time.Sleep(time.Duration(rand.IntN(1500)) * time.Microsecond) })
	defer restore()
	ev := func(action, subject string) store.AuditEvent {
		return store.AuditEvent{Actor: "t", Action: action, Subject: subject}
	}
	e := &store.Enterprise{Username: "feed", Name: "Feed", PasswordHash: "h"}
	if err := a.AddEnterprise(ctx, e, ev("enterprise.add", "feed")); err != nil {
		t.Fatal(err)
	}
	const writers, each = 4, 30
	var made atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []string
			for i := range each {
				serial := fmt.Sprintf("fe%02x%04x", w, i)
				if err := s.JournalSerial(ctx, store.JournalEntry{Serial: serial, EnterpriseID: e.ID, Profile: store.ProfileClient, Issuer: "aa", Node: "n", Boot: "b"}, ev("cert.signing", serial)); err != nil {
					errs <- err
					return
				}
				now := time.Now().UTC().Truncate(time.Second)
				if err := s.StoreCertificate(ctx, &store.Certificate{Serial: serial, EnterpriseID: e.ID, Profile: store.ProfileClient, Issuer: "aa", Subject: "CN=x",
					NotBefore: now, NotAfter: now.AddDate(3, 0, 0), DER: []byte{0x30, 0}, SPKISHA256: "s" + serial, FingerprintSHA256: "f" + serial}, ev("cert.signed", serial)); err != nil {
					errs <- err
					return
				}
				made.Add(1)
				mine = append(mine, serial)
				if i%3 == 2 {
					if _, err := s.Revoke(ctx, store.RevokeRequest{Serial: mine[i-1], Reason: 1, Actor: "t"}); err != nil {
						errs <- err
						return
					}
					made.Add(1)
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	status := map[string]string{}
	var last, seen int64
	read := func() {
		for {
			n, err := b.ReadFeed(ctx, last, 7, func(seq int64, c store.CertStatus) error {
				if seq != last+1 {
					return fmt.Errorf("after change %d came %d", last, seq)
				}
				last = seq
				seen++
				status[c.Serial] = c.Status
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if n < 7 {
				return
			}
		}
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
			read()
			time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
		}
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	read()
	head, err := a.FeedHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if seen != made.Load() || head != seen {
		t.Fatalf("the reader saw %d changes, the writers made %d, head %d", seen, made.Load(), head)
	}
	for serial, st := range status {
		c, err := a.CertStatus(ctx, serial)
		if err != nil || c == nil || c.Status != st {
			t.Errorf("%s: the reader ends with %q, the store has %+v (%v)", serial, st, c, err)
		}
	}
	if len(status) != writers*each {
		t.Errorf("the reader knows %d certificates, want %d", len(status), writers*each)
	}
}

// TestPruneFeedInChunks: pruning in small transactions deletes exactly
// the changes older than the newest keep, whatever the chunk size, and
// numbering goes on from the head.
func TestPruneFeedInChunks(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(ctx, store.Options{Path: filepath.Join(t.TempDir(), "zbca.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer store.SetPruneChunk(4)()
	ev := func(action, subject string) store.AuditEvent {
		return store.AuditEvent{Actor: "t", Action: action, Subject: subject}
	}
	e := &store.Enterprise{Username: "p", Name: "P", PasswordHash: "h"}
	if err := s.AddEnterprise(ctx, e, ev("enterprise.add", "p")); err != nil {
		t.Fatal(err)
	}
	for i := range 25 {
		serial := fmt.Sprintf("ab%04x", i)
		if err := s.JournalSerial(ctx, store.JournalEntry{Serial: serial, EnterpriseID: e.ID, Profile: store.ProfileClient, Issuer: "aa", Node: "n", Boot: "b"}, ev("cert.signing", serial)); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC().Truncate(time.Second)
		if err := s.StoreCertificate(ctx, &store.Certificate{Serial: serial, EnterpriseID: e.ID, Profile: store.ProfileClient, Issuer: "aa", Subject: "CN=x",
			NotBefore: now, NotAfter: now.AddDate(3, 0, 0), DER: []byte{0x30, 0}, SPKISHA256: "s" + serial, FingerprintSHA256: "f" + serial}, ev("cert.signed", serial)); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.PruneFeed(ctx, 3); err != nil || n != 22 {
		t.Fatalf("pruned %d, %v; want 22", n, err)
	}
	var seqs []int64
	if _, err := s.ReadFeed(ctx, 0, 100, func(seq int64, _ store.CertStatus) error { seqs = append(seqs, seq); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(seqs) != 3 || seqs[0] != 23 || seqs[2] != 25 {
		t.Fatalf("left %v, want [23 24 25]", seqs)
	}
	if n, err := s.PruneFeed(ctx, 3); err != nil || n != 0 {
		t.Errorf("a second prune deleted %d, %v", n, err)
	}
	if _, err := s.Revoke(ctx, store.RevokeRequest{Serial: "ab0000", Reason: 1, Actor: "t"}); err != nil {
		t.Fatal(err)
	}
	if head, _ := s.FeedHead(ctx); head != 26 {
		t.Errorf("head after pruning and a revocation: %d, want 26", head)
	}
}
