//go:build integration

package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestZbcertTrust is issue 15 points 3 and 4 with the real zbcert against
// the real `zbca serve`, the way a careless user or a thief does it:
//
//   - the right password gets a certificate;
//   - a copy of that computer's zbcert folder, with its remembered ACME
//     account, and a wrong password gets nothing (enroll and reissue both
//     prove the password; the refused logins are audited);
//   - renew needs no password;
//   - at the daily limit (enroll.policy.max_per_day: 2 here) renew exits
//     non-zero within seconds with the rate-limit message;
//   - after `zbca enterprise passwd`, renew on the old account exits
//     non-zero telling the user to enroll again with the password.
func TestZbcertTrust(t *testing.T) {
	in := newInstance(t, "enroll:\n  policy:\n    max_per_day: 2\n")
	in.start()
	in.mustRun(testPassword+"\n", "enterprise", "add", "acme", "--name", "ACME 有限公司", "--password-stdin")
	_, fp := rootFingerprint(t, in)
	u := newZbcertUser(t)
	u.mustRun("", "setup", "--server", in.httpsURL(), "--no-install", "--fingerprint", fp)

	issued := func() int {
		t.Helper()
		return strings.Count(in.mustRun("", "cert", "list", "--enterprise", "acme", "--json"), `"serial"`)
	}
	audited := func(action string) int {
		t.Helper()
		return strings.Count(in.mustRun("", "audit", "list", "--limit", "100000"), `"Action":"`+action+`"`)
	}

	// The right password: a certificate, a remembered account.
	u.mustRun(testPassword+"\n", "enroll", "--user", "acme", "--password-stdin")
	if n := issued(); n != 1 {
		t.Fatalf("%d certificates after enroll", n)
	}
	if _, err := os.Stat(filepath.Join(u.dir, "accounts", "acme.pem")); err != nil {
		t.Fatalf("no remembered account: %v", err)
	}

	// A copy of the folder and a wrong password: refused, nothing issued,
	// nothing written, and each refusal is an audited login.
	thief := newZbcertUser(t)
	if out, err := exec.Command("cp", "-a", u.dir, thief.dir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	certsBefore := dirNames(t, filepath.Join(thief.dir, "certs"))
	acctBefore, _ := os.ReadFile(filepath.Join(thief.dir, "accounts", "acme.pem"))
	failuresBefore := audited("login.failure")
	for _, cmd := range []string{"enroll", "reissue"} {
		errOut, err := runWithin(t, thief, time.Minute, "LANG=en_US.UTF-8", cmd, "--user", "acme", "--password-stdin")
		if err == nil || !strings.Contains(errOut, "wrong username or password") {
			t.Errorf("%s from a copied folder with a wrong password: %v\n%s", cmd, err, errOut)
		}
	}
	if n := issued(); n != 1 {
		t.Errorf("%d certificates after the wrong passwords, want 1", n)
	}
	if n := audited("login.failure") - failuresBefore; n != 2 {
		t.Errorf("%d login failures audited for 2 wrong passwords", n)
	}
	if got := dirNames(t, filepath.Join(thief.dir, "certs")); got != certsBefore {
		t.Errorf("the copy's certificates changed: %s, then %s", certsBefore, got)
	}
	if b, _ := os.ReadFile(filepath.Join(thief.dir, "accounts", "acme.pem")); string(b) != string(acctBefore) {
		t.Error("the copy's remembered account changed")
	}

	// renew: no password at all (stdin empty, no terminal).
	if out, err := runWithin(t, u, time.Minute, "LANG=en_US.UTF-8", "renew", "--user", "acme"); err != nil {
		t.Fatalf("renew: %v\n%s", err, out)
	}
	if n := issued(); n != 2 {
		t.Fatalf("%d certificates after renew, want 2", n)
	}

	// The daily limit (2): renew fails at once with the rate-limit
	// message; nothing more is issued, the local certificate stays.
	local := dirNames(t, filepath.Join(u.dir, "certs"))
	start := time.Now()
	errOut, err := runWithin(t, u, time.Minute, "LANG=en_US.UTF-8", "renew", "--user", "acme")
	took := time.Since(start)
	if err == nil || took > 10*time.Second || !strings.Contains(errOut, "daily certificate limit") || !strings.Contains(errOut, "daily limit") {
		t.Errorf("renew at the daily limit: %v after %v\n%s", err, took, errOut)
	}
	if n := issued(); n != 2 {
		t.Errorf("%d certificates after the refused renew, want 2", n)
	}
	if got := dirNames(t, filepath.Join(u.dir, "certs")); got != local {
		t.Errorf("local certificates changed: %s, then %s", local, got)
	}
	if out, err := runWithin(t, u, time.Minute, "LANG=zh_CN.UTF-8", "renew", "--user", "acme"); err == nil || !strings.Contains(out, "每日证书数量上限") {
		t.Errorf("renew at the daily limit, in Chinese: %v\n%s", err, out)
	}

	// A password change ends the remembered accounts (the credential
	// epoch): renew, here and in the copy, says to enroll with the password.
	in.mustRun("a new password 2027\n", "enterprise", "passwd", "acme", "--password-stdin")
	for name, who := range map[string]*zbcertUser{"owner": u, "copy": thief} {
		start := time.Now()
		errOut, err := runWithin(t, who, time.Minute, "LANG=en_US.UTF-8", "renew", "--user", "acme")
		if err == nil || time.Since(start) > 10*time.Second || !strings.Contains(errOut, "zbcert enroll --user acme") {
			t.Errorf("renew (%s) after the password changed: %v after %v\n%s", name, err, time.Since(start), errOut)
		}
	}
	if n := issued(); n != 2 {
		t.Errorf("%d certificates at the end, want 2", n)
	}
}

// runWithin runs zbcert as u in the locale lang, killed after d (the
// zbcert of before issue 15 never ended at the daily limit); with
// --password-stdin a wrong password is on standard input. It returns the
// combined output.
func runWithin(t *testing.T, u *zbcertUser, d time.Duration, lang string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, u.bin, args...)
	cmd.Env = []string{"HOME=" + u.home, "ZBCERT_HOME=" + u.dir, lang, "PATH=" + os.Getenv("PATH")}
	cmd.Stdin = strings.NewReader("not-the-password\n")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Errorf("zbcert %s still running after %v, killed", strings.Join(args, " "), d)
	}
	return string(out), err
}

// dirNames lists a directory's entries, comma-separated.
func dirNames(t *testing.T, dir string) string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return strings.Join(names, ",")
}

// TestZbcertReenrollEndsCopy (found by the review of issue 15): the owner
// enrolls again with the password after a copy of the folder was taken;
// the copy's remembered account is deactivated, so its renew gets nothing.
func TestZbcertReenrollEndsCopy(t *testing.T) {
	in := newInstance(t, "enroll:\n  policy:\n    max_per_day: 10\n")
	in.start()
	in.mustRun(testPassword+"\n", "enterprise", "add", "acme", "--name", "ACME 有限公司", "--password-stdin")
	_, fp := rootFingerprint(t, in)
	u := newZbcertUser(t)
	u.mustRun("", "setup", "--server", in.httpsURL(), "--no-install", "--fingerprint", fp)
	u.mustRun(testPassword+"\n", "enroll", "--user", "acme", "--password-stdin")
	thief := newZbcertUser(t)
	if out, err := exec.Command("cp", "-a", u.dir, thief.dir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	u.mustRun(testPassword+"\n", "enroll", "--user", "acme", "--password-stdin")
	issued := func() int {
		return strings.Count(in.mustRun("", "cert", "list", "--enterprise", "acme", "--json"), `"serial"`)
	}
	if n := issued(); n != 2 {
		t.Fatalf("%d certificates after two enrollments", n)
	}
	errOut, err := runWithin(t, thief, time.Minute, "LANG=en_US.UTF-8", "renew", "--user", "acme")
	if err == nil || !strings.Contains(errOut, "zbcert enroll --user acme") {
		t.Errorf("renew from the copy after the owner enrolled again: %v\n%s", err, errOut)
	}
	if n := issued(); n != 2 {
		t.Errorf("%d certificates: the copy renewed", n)
	}
	out := in.mustRun("", "enterprise", "accounts", "acme", "--json")
	if strings.Count(out, `"status":"deactivated"`) != 1 || strings.Count(out, `"status":"valid"`) != 1 {
		t.Errorf("accounts after re-enrolling: %s", out)
	}
	// The owner's own renew still works.
	if out, err := runWithin(t, u, time.Minute, "LANG=en_US.UTF-8", "renew", "--user", "acme"); err != nil {
		t.Errorf("the owner's renew: %v\n%s", err, out)
	}
}
