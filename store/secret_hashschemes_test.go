package store_test

import (
	"context"
	"slices"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/zbca/zbca/internal/password"
	"github.com/zbca/zbca/store"
)

func TestPasswordHashSchemes(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			s, _ := openTwo(t, backend)
			ctx := context.Background()
			own := password.Params{MemoryKiB: 64, Time: 1, Threads: 1}
			other := password.Params{MemoryKiB: 128, Time: 2, Threads: 1}
			h1, _ := password.Hash("pw", own)
			h2, _ := password.Hash("pw", other)
			b5, _ := bcrypt.GenerateFromPassword([]byte("pw"), 5)
			b6, _ := bcrypt.GenerateFromPassword([]byte("pw"), 6)
			b5b, _ := bcrypt.GenerateFromPassword([]byte("pw2"), 5)
			for i, h := range []string{h1, h2, string(b5), string(b6), string(b5b), "garbage"} {
				u := string(rune('a' + i))
				if err := s.AddEnterprise(ctx, &store.Enterprise{Username: u, Name: u, PasswordHash: h}, store.AuditEvent{Actor: "t", Action: "enterprise.add"}); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.PasswordHashSchemes(ctx, "$argon2id$v=19$m=64,t=1,p=1$")
			want := []string{"argon2id m=128,t=2,p=1", "bcrypt 5", "bcrypt 6"}
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("schemes %q, %v; want %q", got, err, want)
			}
			all, err := s.PasswordHashSchemes(ctx, "")
			if err != nil || len(all) != 4 {
				t.Fatalf("all schemes %q, %v", all, err)
			}
		})
	}
}
