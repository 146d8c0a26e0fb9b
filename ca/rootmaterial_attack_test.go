package ca

import (
	"context"
	"crypto"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

type clk struct{ t time.Time }

func (c *clk) now() time.Time { return c.t }

func goOffline(t *testing.T, f *fixture) *Authority {
	t.Helper()
	key := filepath.Join(f.opts.Dir, f.a.RootKeyFile())
	if err := os.Rename(key, key+".away"); err != nil {
		t.Fatal(err)
	}
	a, err := Open(context.Background(), f.opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if a.RootOnline() {
		t.Fatal("online")
	}
	return a
}

func write(t *testing.T, m *RootMaterial) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "m")
	if err := WriteRootMaterial(d, m); err != nil {
		t.Fatal(err)
	}
	return d
}

// (Second review, issue 17.) README "A compromised issuing CA": ceremony --revoke issuing-1, import,
// "Then roll over to a new issuing CA as above": the rollover's material
// (rollover sign) says issuing-1 is good again and is imported.
func TestOfflineRootAttackCompromiseThenRolloverUnrevokes(t *testing.T) {
	ctx := context.Background()
	c := &clk{time.Now()}
	f := newFixture(t, c.now)
	cer := f.a // holds the root key: the ceremony
	m1, err := cer.SignRootMaterial(90*24*time.Hour, []string{"issuing-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cer.ImportRootMaterial(write(t, m1)); err != nil {
		t.Fatal(err)
	}
	srv := goOffline(t, f)
	c.t = c.t.Add(time.Hour)
	_, csr, err := srv.PrepareRollover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := cer.SignIssuingCSR(csr)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := cer.SignRootMaterial(365*24*time.Hour, nil, cert) // exactly what "rollover sign" does
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.ImportRollover(ctx, cert, write(t, m2)); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	srv2, err := Open(ctx, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Close()
	if _, err := srv2.ImportRootMaterial(write(t, m2)); err != nil {
		t.Fatal(err)
	}
	m, _ := srv2.ReloadRootMaterial()
	old := f.a.IssuingCerts()[0]
	r, err := ocsp.ParseResponseForCert(m.OCSP[SerialHex(old.SerialNumber)][crypto.SHA1], old, srv2.Root())
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != ocsp.Revoked {
		t.Errorf("compromised issuing-1 is %v (0=good) in the served root material after the README's compromise+rollover path; revoked list %v", r.Status, m.Revoked)
	}
}

// material.json's this_update is not checked against the signed CRL or
// answers: an edited this_update makes old material "newer", and a future
// one blocks every later legitimate import.
func TestOfflineRootAttackUnsignedThisUpdate(t *testing.T) {
	c := &clk{time.Now()}
	f := newFixture(t, c.now)
	m1, err := f.a.SignRootMaterial(90*24*time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := write(t, m1)
	var meta map[string]any
	b, _ := os.ReadFile(filepath.Join(d, "material.json"))
	json.Unmarshal(b, &meta)
	meta["this_update"] = time.Now().Add(80 * 24 * time.Hour).UTC().Format(time.RFC3339)
	meta["revoked"] = []string{"issuing-1"} // unsigned too: printed and audited as revoked
	b, _ = json.Marshal(meta)
	os.WriteFile(filepath.Join(d, "material.json"), b, 0o644)
	// material.json is only an index: the signed CRL's times and list
	// count, so the edit changes nothing.
	got, err := f.a.ImportRootMaterial(d)
	if err != nil || !got.ThisUpdate.Equal(m1.ThisUpdate) || len(got.Revoked) != 0 {
		t.Errorf("an edited material.json: %v; this update %v (signed %v), revoked %v", err, got.ThisUpdate, m1.ThisUpdate, got.Revoked)
	}
	c.t = c.t.Add(24 * time.Hour)
	m2, err := f.a.SignRootMaterial(365*24*time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.ImportRootMaterial(write(t, m2)); err != nil {
		t.Errorf("the next legitimate ceremony's material is refused: %v", err)
	}
}

// The rollover's material refused (here: a routine material signed later at
// the same ceremony and imported first) after ImportRollover switched: at
// the next start the root-offline server has no root material at all, the
// old one being refused as lacking the new CA.
func TestOfflineRootAttackRolloverMaterialFailsAfterSwitch(t *testing.T) {
	ctx := context.Background()
	c := &clk{time.Now()}
	f := newFixture(t, c.now)
	cer := f.a
	m0, _ := cer.SignRootMaterial(90*24*time.Hour, nil)
	if _, err := cer.ImportRootMaterial(write(t, m0)); err != nil {
		t.Fatal(err)
	}
	srv := goOffline(t, f)
	c.t = c.t.Add(time.Hour)
	_, csr, err := srv.PrepareRollover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := cer.SignIssuingCSR(csr)
	mRoll, _ := cer.SignRootMaterial(365*24*time.Hour, nil, cert)
	c.t = c.t.Add(time.Minute)
	mRoutine, _ := cer.SignRootMaterial(365*24*time.Hour, nil)
	if _, err := srv.ImportRootMaterial(write(t, mRoutine)); err != nil {
		t.Fatal(err)
	}
	// The rollover's material is older than the one in place: refused
	// before anything switches.
	if _, err := srv.ImportRollover(ctx, cert, write(t, mRoll)); err == nil {
		t.Fatal("a rollover with material older than the one in place was switched")
	}
	srv.Close()
	srv2, err := Open(ctx, f.opts) // afterRollover
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Close()
	_, ierr := srv2.ImportRootMaterial(write(t, mRoll))
	t.Logf("afterRollover's import: %v", ierr)
	srv2.Close()
	srv3, err := Open(ctx, f.opts) // next serve
	if err != nil {
		t.Fatal(err)
	}
	defer srv3.Close()
	if srv3.ServedRootMaterial() == nil {
		_, rerr := srv3.RootMaterial()
		t.Errorf("after the switch the server serves no root material at all (not even for the old CA): %v", rerr)
	}
}

// A material whose thisUpdate is in the future (ceremony clock ahead) is
// imported and served.
func TestOfflineRootAttackFutureThisUpdate(t *testing.T) {
	c := &clk{time.Now().Add(48 * time.Hour)}
	f := newFixture(t, c.now)
	m, _ := f.a.SignRootMaterial(90*24*time.Hour, nil)
	d := write(t, m)
	c.t = time.Now()
	if _, err := f.a.ImportRootMaterial(d); err == nil {
		t.Errorf("material signed 48h in the future (thisUpdate %s) imported", m.ThisUpdate)
	}
}

// Second offline rollover with the ceremony's copy of ca/ not refreshed
// after the first (README never says to): the rollover is switched, then
// the material is refused, and the next start serves no root material.
func TestOfflineRootAttackStaleCeremonyCopySecondRollover(t *testing.T) {
	ctx := context.Background()
	c := &clk{time.Now()}
	f := newFixture(t, c.now)
	cer := f.a // its manifest is the one copied to the ceremony machine once
	m0, _ := cer.SignRootMaterial(90*24*time.Hour, nil)
	if _, err := cer.ImportRootMaterial(write(t, m0)); err != nil {
		t.Fatal(err)
	}
	srv := goOffline(t, f)
	roll := func(srv *Authority) error {
		c.t = c.t.Add(time.Hour)
		_, csr, err := srv.PrepareRollover(ctx)
		if err != nil {
			return err
		}
		cert, err := cer.SignIssuingCSR(csr)
		if err != nil {
			return err
		}
		m, err := cer.SignRootMaterial(365*24*time.Hour, nil, cert)
		if err != nil {
			return err
		}
		if _, err := srv.ImportRollover(ctx, cert, write(t, m)); err != nil {
			t.Logf("the rollover refused before switching: %v", err)
			srv.Close()
			return nil
		}
		srv.Close()
		s2, err := Open(ctx, f.opts)
		if err != nil {
			return err
		}
		defer s2.Close()
		if _, err := s2.ImportRootMaterial(write(t, m)); err != nil {
			t.Logf("afterRollover import refused after the switch: %v (current issuing CA now %s)", err, s2.IssuingName())
		}
		return nil
	}
	if err := roll(srv); err != nil {
		t.Fatal(err)
	}
	s, _ := Open(ctx, f.opts)
	if err := roll(s); err != nil {
		t.Fatal(err)
	}
	s3, err := Open(ctx, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	if s3.ServedRootMaterial() == nil {
		_, rerr := s3.RootMaterial()
		t.Errorf("serving %s with no root material at all: %v", s3.IssuingName(), rerr)
	}
}
