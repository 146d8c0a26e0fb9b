package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

func TestServerKeygenFlag(t *testing.T) { eachBackend(t, testServerKeygenFlag) }

func testServerKeygenFlag(t *testing.T, s *store.SQL) {
	ctx := context.Background()
	if err := s.AddEnterprise(ctx, &store.Enterprise{Username: "acme", Name: "ACME", PasswordHash: "h"}, store.AuditEvent{Actor: "t", Action: "enterprise.add"}); err != nil {
		t.Fatal(err)
	}
	if on, err := s.ServerKeygen(ctx, "acme"); err != nil || on {
		t.Fatalf("default: %v %v, want off", on, err)
	}
	for _, want := range []bool{true, false} {
		if err := s.SetServerKeygen(ctx, "acme", want, store.AuditEvent{Actor: "t", Action: "enterprise.set", Subject: "acme"}); err != nil {
			t.Fatal(err)
		}
		if on, err := s.ServerKeygen(ctx, "acme"); err != nil || on != want {
			t.Fatalf("after set %v: %v %v", want, on, err)
		}
	}
	if _, err := s.ServerKeygen(ctx, "nobody"); !errors.Is(err, zerr.NotFound) {
		t.Fatalf("unknown: %v", err)
	}
	if err := s.SetServerKeygen(ctx, "nobody", true, store.AuditEvent{Actor: "t", Action: "enterprise.set"}); !errors.Is(err, zerr.NotFound) {
		t.Fatalf("set unknown: %v", err)
	}
}
