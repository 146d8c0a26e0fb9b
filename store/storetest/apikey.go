package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

func keyHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// testAPIKeys: add, look up by hash, list, revoke (audited, once), and a
// name reused after its key was revoked.
func testAPIKeys(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	before := auditCount(t, s)
	k := &store.APIKey{Name: "site-a", Hash: keyHash("zbca_one"), Prefix: "zbca_one"}
	if err := s.AddAPIKey(ctx, k, ev("apikey.add", "site-a")); err != nil {
		t.Fatal(err)
	}
	if k.ID == 0 || k.Status != store.APIKeyActive || k.CreatedAt.IsZero() || !k.RevokedAt.IsZero() {
		t.Errorf("after AddAPIKey: %+v", k)
	}
	if n := auditCount(t, s); n != before+1 {
		t.Errorf("AddAPIKey: %d audit entries, want %d", n, before+1)
	}
	got, err := s.APIKeyByHash(ctx, k.Hash)
	if err != nil || got.Name != "site-a" || got.Status != store.APIKeyActive || got.Prefix != "zbca_one" || !got.CreatedAt.Equal(k.CreatedAt) {
		t.Fatalf("APIKeyByHash: %+v %v", got, err)
	}
	if _, err := s.APIKeyByHash(ctx, keyHash("nope")); !errors.Is(err, zerr.NotFound) {
		t.Errorf("unknown hash: %v, want NotFound", err)
	}
	// A second active key of the same name, or the same hash, is refused
	// and leaves no audit entry.
	n := auditCount(t, s)
	if err := s.AddAPIKey(ctx, &store.APIKey{Name: "site-a", Hash: keyHash("zbca_two"), Prefix: "zbca_two"}, ev("apikey.add", "site-a")); !errors.Is(err, zerr.Conflict) {
		t.Errorf("duplicate name: %v, want Conflict", err)
	}
	if err := s.AddAPIKey(ctx, &store.APIKey{Name: "site-b", Hash: k.Hash, Prefix: "zbca_one"}, ev("apikey.add", "site-b")); !errors.Is(err, zerr.Conflict) {
		t.Errorf("duplicate hash: %v, want Conflict", err)
	}
	if err := s.AddAPIKey(ctx, &store.APIKey{Name: "", Hash: keyHash("x")}, ev("apikey.add", "")); !errors.Is(err, zerr.BadRequest) {
		t.Errorf("empty name: %v, want BadRequest", err)
	}
	if auditCount(t, s) != n {
		t.Error("a refused AddAPIKey left an audit entry")
	}
	// Revoke: once.
	r, err := s.RevokeAPIKey(ctx, "site-a", ev("apikey.revoke", "site-a"))
	if err != nil || r.Status != store.APIKeyRevoked || r.RevokedAt.IsZero() || r.Hash != k.Hash {
		t.Fatalf("RevokeAPIKey: %+v %v", r, err)
	}
	if _, err := s.RevokeAPIKey(ctx, "site-a", ev("apikey.revoke", "site-a")); !errors.Is(err, zerr.NotFound) {
		t.Errorf("second revocation: %v, want NotFound", err)
	}
	if _, err := s.RevokeAPIKey(ctx, "nobody", ev("apikey.revoke", "nobody")); !errors.Is(err, zerr.NotFound) {
		t.Errorf("unknown name: %v, want NotFound", err)
	}
	if got, err := s.APIKeyByHash(ctx, k.Hash); err != nil || got.Status != store.APIKeyRevoked {
		t.Errorf("revoked key by hash: %+v %v", got, err)
	}
	if n := auditCount(t, s); n != before+2 {
		t.Errorf("%d audit entries after add and revoke, want %d", n, before+2)
	}
	// The name is free again.
	k2 := &store.APIKey{Name: "site-a", Hash: keyHash("zbca_three"), Prefix: "zbca_thr"}
	if err := s.AddAPIKey(ctx, k2, ev("apikey.add", "site-a")); err != nil {
		t.Fatalf("reusing a revoked key's name: %v", err)
	}
	list, err := s.ListAPIKeys(ctx)
	if err != nil || len(list) != 2 || list[0].Status != store.APIKeyRevoked || list[1].Status != store.APIKeyActive || list[1].Hash != k2.Hash {
		t.Errorf("ListAPIKeys: %+v %v", list, err)
	}
}

// testConcurrentAPIKeyRevoke: of concurrent revocations of one key, exactly
// one succeeds.
func testConcurrentAPIKeyRevoke(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	if err := s.AddAPIKey(ctx, &store.APIKey{Name: "site", Hash: keyHash("k"), Prefix: "k"}, ev("apikey.add", "site")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, notFound := 0, 0
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.RevokeAPIKey(ctx, "site", ev("apikey.revoke", "site"))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, zerr.NotFound):
				notFound++
			default:
				t.Errorf("RevokeAPIKey: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok != 1 || notFound != 15 {
		t.Errorf("%d revocations succeeded and %d were refused, want 1 and 15", ok, notFound)
	}
}

// testCertRevocation: the verification API's status lookup sees a
// revocation at once, and an unknown serial as not found.
func testCertRevocation(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	e := addEnterprise(t, s, "acme")
	serial := issueN(t, s, e, 1)[0]
	if r, found, err := s.CertRevocation(ctx, serial); err != nil || !found || r != (store.Revocation{}) {
		t.Fatalf("active certificate: %+v %v %v", r, found, err)
	}
	at := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	if _, err := s.Revoke(ctx, store.RevokeRequest{Serial: serial, Reason: 1, At: at, Actor: "operator"}); err != nil {
		t.Fatal(err)
	}
	if r, found, err := s.CertRevocation(ctx, serial); err != nil || !found || r != (store.Revocation{Revoked: true, At: at.UnixNano(), Reason: 1}) {
		t.Errorf("revoked certificate: %+v %v %v", r, found, err)
	}
	if _, found, err := s.CertRevocation(ctx, "fffffff"); err != nil || found {
		t.Errorf("unknown serial: found %v, %v", found, err)
	}
}
