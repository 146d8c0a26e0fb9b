package enroll

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/zbca/zbca/store"
)

// TestUnknownUsernameNotKeptReadable: a password typed into the username
// field is an unknown username; it must not be readable in the audit log
// or the server log, whatever happens to the attempt (refused, locked,
// rate-limited, malformed), yet every attempt with it carries the same
// record, on every node. Known usernames stay readable.
func TestUnknownUsernameNotKeptReadable(t *testing.T) {
	f := newGuardFixture(t, GuardOptions{PerIPRate: 1, PerIPBurst: 8})
	const typo = "Secr3t-Typed-In-Username" // a valid username, unknown
	const typoMalformed = "Secr3t typed in! username"
	for range 6 { // failures, then locked
		f.login(typo, "whatever-pw")
	}
	f.login(typoMalformed, "whatever-pw")
	f.login("acme", "wrong-password")
	for range 5 { // rate-limited
		f.login(typo, "whatever-pw")
	}
	evs := auditEvents(t, f.s)
	subjects := map[string]map[string]bool{} // action → subjects
	for _, ev := range evs {
		raw, _ := json.Marshal(ev)
		if strings.Contains(string(raw), "Secr3t") {
			t.Errorf("audit entry %d keeps the unknown username: %s", ev.Seq, raw)
		}
		if subjects[ev.Action] == nil {
			subjects[ev.Action] = map[string]bool{}
		}
		subjects[ev.Action][ev.Subject] = true
	}
	if strings.Contains(f.logs.String(), "Secr3t") {
		t.Errorf("the log keeps the unknown username:\n%s", f.logs)
	}
	rec := f.g.names.record(context.Background(), typo, nil)
	if !strings.HasPrefix(rec, unknownPrefix) || len(rec) != len(unknownPrefix)+24 {
		t.Fatalf("record of an unknown username: %q", rec)
	}
	for _, a := range []string{"login.failure", "login.locked", "login.ratelimited"} {
		if !subjects[a][rec] {
			t.Errorf("%s: subjects %v, want %q among them", a, subjects[a], rec)
		}
	}
	if !subjects["login.failure"]["acme"] {
		t.Errorf("a known username is not readable: %v", subjects["login.failure"])
	}
	if f.g.names.record(context.Background(), typoMalformed, nil) == rec || f.g.names.record(context.Background(), "other", nil) == rec {
		t.Error("different names, same record")
	}

	// Another node on the same store records the same name alike.
	g2, err := NewGuard(f.inner, GuardOptions{Store: f.s, Name: "local"})
	if err != nil {
		t.Fatal(err)
	}
	if got := g2.names.record(context.Background(), typo, nil); got != rec {
		t.Errorf("another node records %q, this one %q", got, rec)
	}
	// A new account by that name is readable from then on.
	addEnterprise(t, f.s, typo, mustHash(t, "right-password", cheap), store.StatusActive)
	if got := g2.names.record(context.Background(), typo, nil); got != typo {
		t.Errorf("a known username recorded as %q", got)
	}
}
