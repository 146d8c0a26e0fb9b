//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// recoveryError is what store.RecoverJournal writes into the journal
// entries of an earlier boot that never reached the store.
const recoveryError = "process ended before the certificate was stored"

// TestCrashDuringIssuance kills `zbca serve` with SIGKILL while 32 clients
// are issuing, restarts it and checks the promises of the issuance journal:
// every certificate a caller received is in the store with the same DER,
// every journaled serial is either stored or marked failed, and no serial
// is used twice.
func TestCrashDuringIssuance(t *testing.T) {
	const (
		clients     = 32
		csrs        = 64
		minLoad     = 1500 * time.Millisecond // load before the kill
		minReceived = 300                     // ... and at least this many certificates
		loadLimit   = 15 * time.Second        // unless the machine is this slow
	)
	testStart := time.Now()

	in := newInstance(t, "enroll:\n  policy:\n    max_active: 100\n    max_per_day: 1000000\n")
	in.start()
	in.mustRun("passw0rd-long\n", "enterprise", "add", "acme", "--name", "ACME", "--password-stdin")
	token := in.adminToken()
	url := "http://" + in.admin + "/admin/v1/certificates"

	bodies := make([][]byte, csrs)
	for i := range bodies {
		bodies[i] = issueBody(t, fmt.Sprintf("crash-client-%d", i))
	}

	// 1. Load: every client posts in a loop and stops at its first error,
	// which comes from the kill.
	client := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        clients,
			MaxIdleConnsPerHost: clients,
			IdleConnTimeout:     30 * time.Second,
		},
	}
	defer client.CloseIdleConnections()

	var (
		mu        sync.Mutex
		received  = map[string][]byte{} // serial -> DER a caller received
		reused    []string              // serials received twice
		badAnswer []string              // answers other than 201 or broken 201s
		count     atomic.Int64
		running   atomic.Int32
		killed    atomic.Bool
		stopped   = make(chan struct{}) // closed to stop clients in any case
		wg        sync.WaitGroup
		lastErrs  = make([]error, clients)
	)
	defer func() {
		select {
		case <-stopped:
		default:
			close(stopped)
		}
	}()
	for c := range clients {
		wg.Add(1)
		running.Add(1)
		go func() {
			defer wg.Done()
			defer running.Add(-1)
			for i := c; ; i += clients {
				select {
				case <-stopped:
					return
				default:
				}
				serial, der, _, err := postIssue(client, url, token, bodies[i%csrs])
				if err != nil {
					lastErrs[c] = err
					if !killed.Load() {
						mu.Lock()
						badAnswer = append(badAnswer, fmt.Sprintf("client %d before the kill: %v", c, err))
						mu.Unlock()
					}
					return
				}
				mu.Lock()
				if _, dup := received[serial]; dup {
					reused = append(reused, serial)
				}
				received[serial] = der
				mu.Unlock()
				count.Add(1)
			}
		}()
	}

	loadStart := time.Now()
	for {
		el := time.Since(loadStart)
		if el >= minLoad && count.Load() >= minReceived {
			break
		}
		if el >= loadLimit {
			t.Logf("slow machine: only %d certificates after %s, killing anyway", count.Load(), el)
			break
		}
		if running.Load() == 0 {
			break // every client stopped: badAnswer says why
		}
		time.Sleep(20 * time.Millisecond)
	}
	atKill := count.Load()
	killed.Store(true)
	pid := in.cmd.Process.Pid
	in.kill()
	loadDur := time.Since(loadStart)
	close(stopped)

	clientsDone := make(chan struct{})
	go func() { wg.Wait(); close(clientsDone) }()
	select {
	case <-clientsDone:
	case <-time.After(10 * time.Second):
		t.Fatal("clients still running 10s after the kill")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, b := range badAnswer {
		t.Error(b)
	}
	if len(reused) > 0 {
		t.Errorf("%d serials were returned to two callers: %v", len(reused), reused)
	}
	if len(received) == 0 {
		t.Fatal("no certificate was issued before the kill")
	}
	// The kill must have hit running clients, not idle ones.
	inFlight := 0
	for _, err := range lastErrs {
		if err != nil {
			inFlight++
		}
	}
	t.Logf("killed pid %d after %s of load: %d certificates received (%d when the kill was decided, %.0f/s), %d clients failed on the kill",
		pid, loadDur.Round(time.Millisecond), len(received), atKill, float64(len(received))/loadDur.Seconds(), inFlight)
	if inFlight == 0 {
		t.Error("no client saw the kill: the server was not killed during the burst")
	}

	// 2. The state the crash left, before any restart touches it: a copy of
	// the database and its WAL, so that reading it changes nothing.
	snap := snapshotDB(t, in)
	pendingAtCrash := journalSerials(t, snap, "pending")
	allAtCrash := journalSerials(t, snap, "")
	snap.Close()

	// 3. Restart after SIGKILL.
	restartStart := time.Now()
	in.start()
	restartDur := time.Since(restartStart)

	// A new certificate after the restart has a serial never used before.
	// POST is not retried on a dead keep-alive connection: drop them all.
	client.CloseIdleConnections()
	serial, der, status, err := postIssue(client, url, token, bodies[0])
	if err != nil || status != http.StatusCreated {
		t.Fatalf("issuing after the restart: HTTP %d, %v", status, err)
	}
	if allAtCrash[serial] || received[serial] != nil {
		t.Errorf("serial %s issued after the restart was used before the crash", serial)
	}

	// The CLI sees what callers received (a few, each is a process).
	for _, s := range []string{firstKey(received), serial} {
		var show struct {
			Serial string `json:"serial"`
			PEM    string `json:"pem"`
		}
		out := in.mustRun("", "cert", "show", s, "--json")
		if err := json.Unmarshal([]byte(out), &show); err != nil {
			t.Fatalf("cert show %s: %v\n%s", s, err, out)
		}
		want := received[s]
		if s == serial {
			want = der
		}
		if b, _ := pem.Decode([]byte(show.PEM)); show.Serial != s || b == nil || !bytes.Equal(b.Bytes, want) {
			t.Errorf("cert show %s: serial %q and PEM differ from what the caller received", s, show.Serial)
		}
	}
	in.stop()

	// 4. The database after a clean stop.
	db := openDB(t, filepath.Join(in.dir, "zbca.db"))
	defer db.Close()
	ctx := context.Background()

	// Every certificate a caller received is stored, byte for byte, and
	// its journal entry says issued.
	received[serial] = der
	missing, differ, notIssued := 0, 0, 0
	for s, want := range received {
		var got []byte
		var state string
		err := db.QueryRowContext(ctx, `SELECT c.der, j.state FROM certificates c JOIN issuance_journal j ON j.serial = c.serial WHERE c.serial = ?`, s).Scan(&got, &state)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			missing++
			if missing <= 5 {
				t.Errorf("certificate %s was received by a caller but is not in the store", s)
			}
		case err != nil:
			t.Fatal(err)
		case !bytes.Equal(got, want):
			differ++
			if differ <= 5 {
				t.Errorf("certificate %s in the store differs from what the caller received", s)
			}
		case state != "issued":
			notIssued++
			if notIssued <= 5 {
				t.Errorf("certificate %s was received but its journal entry is %q", s, state)
			}
		}
	}
	if missing+differ+notIssued > 0 {
		t.Errorf("of %d received certificates: %d missing, %d different, %d not journaled as issued", len(received), missing, differ, notIssued)
	}

	// Every journaled serial is stored or failed; nothing stays pending.
	counts := map[string]int{}
	rows, err := db.QueryContext(ctx, `SELECT state, COUNT(*) FROM issuance_journal GROUP BY state`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			t.Fatal(err)
		}
		counts[st] = n
	}
	rows.Close()
	if counts["pending"] != 0 {
		t.Errorf("%d journal entries are still pending after the restart", counts["pending"])
	}
	checks := []struct {
		what  string
		query string
	}{
		{"issued journal entries without a certificate",
			`SELECT COUNT(*) FROM issuance_journal j WHERE j.state = 'issued' AND NOT EXISTS (SELECT 1 FROM certificates c WHERE c.serial = j.serial)`},
		{"certificates whose journal entry is not issued",
			`SELECT COUNT(*) FROM certificates c LEFT JOIN issuance_journal j ON j.serial = c.serial WHERE j.state IS NOT 'issued'`},
		{"failed journal entries with a certificate",
			`SELECT COUNT(*) FROM issuance_journal j JOIN certificates c ON c.serial = j.serial WHERE j.state = 'failed'`},
		{"duplicate journal serials",
			`SELECT COUNT(*) - COUNT(DISTINCT serial) FROM issuance_journal`},
		{"duplicate certificate serials",
			`SELECT COUNT(*) - COUNT(DISTINCT serial) FROM certificates`},
		{"journal entries without exactly one cert.signing audit event",
			`SELECT COUNT(*) FROM issuance_journal j WHERE (SELECT COUNT(*) FROM audit_log a WHERE a.action = 'cert.signing' AND a.subject = j.serial) <> 1`},
		{"certificates without exactly one cert.signed audit event",
			`SELECT COUNT(*) FROM certificates c WHERE (SELECT COUNT(*) FROM audit_log a WHERE a.action = 'cert.signed' AND a.subject = c.serial) <> 1`},
	}
	for _, c := range checks {
		var n int
		if err := db.QueryRowContext(ctx, c.query).Scan(&n); err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		if n != 0 {
			t.Errorf("%d %s", n, c.what)
		}
	}

	// Exactly the entries pending at the crash were marked failed by the
	// recovery, and nothing else.
	recovered := map[string]bool{}
	rows, err = db.QueryContext(ctx, `SELECT serial FROM issuance_journal WHERE state = 'failed' AND error = ?`, recoveryError)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		recovered[s] = true
	}
	rows.Close()
	for s := range pendingAtCrash {
		if !recovered[s] {
			t.Errorf("serial %s was pending at the crash but was not marked failed by the recovery", s)
		}
	}
	for s := range recovered {
		if !pendingAtCrash[s] {
			t.Errorf("serial %s was marked failed by the recovery but was not pending at the crash", s)
		}
	}
	var recoverEvents int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_log WHERE action = 'journal.recover'`).Scan(&recoverEvents); err != nil {
		t.Fatal(err)
	}
	if want := min(len(pendingAtCrash), 1); recoverEvents != want {
		t.Errorf("%d journal.recover audit events, want %d", recoverEvents, want)
	}

	var total, undelivered int
	if len(pendingAtCrash) == 0 {
		t.Log("note: no issuance was between journal and store when the kill came")
	}
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM issuance_journal`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	// Stored when the kill came, before the answer reached the caller.
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM certificates WHERE profile = 'client'`).Scan(&undelivered); err != nil {
		t.Fatal(err)
	}
	undelivered -= len(received)
	db.Close()

	if out, errOut, err := in.run("", "audit", "verify"); err != nil {
		t.Errorf("zbca audit verify: %v\n%s%s", err, out, errOut)
	}

	t.Logf("received %d, journaled %d (issued %d, failed %d, pending %d), stored but not delivered %d, pending at crash %d, failed by recovery %d, restart %s, test %s",
		len(received), total, counts["issued"], counts["failed"], counts["pending"], undelivered, len(pendingAtCrash), len(recovered),
		restartDur.Round(time.Millisecond), time.Since(testStart).Round(time.Millisecond))
}

// issueBody returns a JSON issuance request for acme with a fresh P-256
// CSR.
func issueBody(t *testing.T, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]string{
		"enterprise": "acme",
		"csr":        string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// postIssue asks the admin API for a certificate. On 201 it returns the
// serial and the DER of the certificate, after checking they agree.
func postIssue(c *http.Client, url, token string, body []byte) (serial string, der []byte, status int, err error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return "", nil, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return "", nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", nil, resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusCreated {
		return "", nil, resp.StatusCode, fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	var out struct {
		Serial string `json:"serial"`
		PEM    string `json:"pem"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return "", nil, resp.StatusCode, fmt.Errorf("decoding a 201 answer: %w", err)
	}
	block, _ := pem.Decode([]byte(out.PEM))
	if block == nil {
		return "", nil, resp.StatusCode, fmt.Errorf("201 answer for %s without a PEM certificate", out.Serial)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", nil, resp.StatusCode, fmt.Errorf("201 answer for %s: %w", out.Serial, err)
	}
	if got := cert.SerialNumber.Text(16); got != out.Serial {
		return "", nil, resp.StatusCode, fmt.Errorf("201 answer says serial %s, its certificate has %s", out.Serial, got)
	}
	return out.Serial, block.Bytes, resp.StatusCode, nil
}

// snapshotDB copies the database and its WAL as the crash left them and
// opens the copy, so that nothing (such as a checkpoint) changes the
// original before the server recovers it.
func snapshotDB(t *testing.T, in *instance) *sql.DB {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "zbca.db")
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(filepath.Join(in.dir, "zbca.db") + suffix)
		if errors.Is(err, os.ErrNotExist) && suffix != "" {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return openDB(t, dst)
}

func openDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// journalSerials returns the serials of the journal entries in state, or
// of all entries when state is "".
func journalSerials(t *testing.T, db *sql.DB, state string) map[string]bool {
	t.Helper()
	rows, err := db.Query(`SELECT serial FROM issuance_journal WHERE ? = '' OR state = ?`, state, state)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out[s] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func firstKey(m map[string][]byte) string {
	for k := range m {
		return k
	}
	return ""
}
