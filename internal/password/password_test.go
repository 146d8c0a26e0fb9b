package password

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

var fast = Params{MemoryKiB: 64, Time: 1, Threads: 1}

func TestHashVerify(t *testing.T) {
	h, err := Hash("s3cret-口令", fast)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("unexpected PHC string %q", h)
	}
	if err := Verify("s3cret-口令", h); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if err := Verify("wrong", h); !errors.Is(err, ErrMismatch) {
		t.Fatalf("wrong password: got %v, want ErrMismatch", err)
	}
	if NeedsRehash(h, fast) {
		t.Error("same params should not need rehash")
	}
	if !NeedsRehash(h, Default) {
		t.Error("other params should need rehash")
	}
	h2, _ := Hash("s3cret-口令", fast)
	if h == h2 {
		t.Error("two hashes of one password are equal: salt not random")
	}
}

func TestBcryptImported(t *testing.T) {
	b, err := bcrypt.GenerateFromPassword([]byte("legacy"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckHash(string(b)); err != nil {
		t.Fatalf("CheckHash: %v", err)
	}
	if err := Verify("legacy", string(b)); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := Verify("nope", string(b)); !errors.Is(err, ErrMismatch) {
		t.Fatalf("got %v", err)
	}
	if !NeedsRehash(string(b), Default) {
		t.Error("bcrypt should need rehash")
	}
}

func TestCheckHashRejects(t *testing.T) {
	for _, s := range []string{
		"",
		"plaintext",
		"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$",
		"$argon2id$v=18$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g",
		"$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g",
		"$argon2id$v=19$m=19456,t=0,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g",
		"$argon2id$v=19$m=19456,t=2,p=0$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g",
		"$argon2id$v=19$m=19456,t=2,x=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g",
		"$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g",
		"$2a$10$short",
		"$2a$31$" + strings.Repeat("a", 53),
		"$5$rounds=5000$abc$def",
		"$2a$10$" + strings.Repeat("!", 53),
	} {
		if err := CheckHash(s); err == nil {
			t.Errorf("CheckHash(%q) accepted a bad hash", s)
		}
	}
	good := "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g"
	if err := CheckHash(good); err != nil {
		t.Errorf("CheckHash(%q): %v", good, err)
	}
}

func FuzzCheckHash(f *testing.F) {
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g")
	f.Add("$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy")
	f.Fuzz(func(t *testing.T, s string) {
		if CheckHash(s) == nil && strings.HasPrefix(s, "$argon2id$") {
			// An accepted argon2 hash must be verifiable without panicking
			// and within the memory bound.
			h, _ := parseArgon2id(s)
			if h.p.MemoryKiB > maxMemoryKiB || h.p.Time > maxTime {
				t.Fatalf("accepted out-of-bounds params %+v", h.p)
			}
		}
	})
}

func TestSchemeAndSample(t *testing.T) {
	a, err := Hash("pw", fast)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bcrypt.GenerateFromPassword([]byte("pw"), 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ hash, want string }{
		{a, "argon2id m=64,t=1,p=1"},
		{string(b), "bcrypt 5"},
		{"$2b$05$short", ""},
		{"plain", ""},
		{"$argon2id$v=19$m=64,t=0,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", ""},
	} {
		if got := Scheme(tc.hash); got != tc.want {
			t.Errorf("Scheme(%q) = %q, want %q", tc.hash, got, tc.want)
		}
		if tc.want == "" {
			continue
		}
		s, err := Sample(tc.want)
		if err != nil {
			t.Fatalf("Sample(%q): %v", tc.want, err)
		}
		if got := Scheme(s); got != tc.want || s == tc.hash {
			t.Errorf("Sample(%q) = %q of scheme %q", tc.want, s, got)
		}
	}
	for _, bad := range []string{"", "bcrypt 99", "bcrypt x", "argon2id m=1,t=1,p=1", "argon2id m=99999999,t=1,p=1", "md5"} {
		if _, err := Sample(bad); err == nil {
			t.Errorf("Sample(%q) accepted", bad)
		}
	}
}
