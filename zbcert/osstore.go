package zbcert

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// InstallP12 imports a PKCS#12 file into the user's certificate store,
// where browsers find it:
//
//	windows  certutil -user -importPFX (the user's "My" store)
//	darwin   security import into the login keychain
//	linux    pk12util into ~/.pki/nssdb (Chrome, Chromium; created if absent)
//
// It returns a description of where the certificate went.
func InstallP12(ctx context.Context, file, password string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	switch runtime.GOOS {
	case "windows":
		// NoRoot: the root is installed by `zbcert setup`, with its own
		// confirmation, not silently with a client certificate.
		return "Windows: CurrentUser\\My", runTool(ctx, "certutil", "-f", "-user", "-p", password, "-importPFX", file, "NoRoot")
	case "darwin":
		home, _ := os.UserHomeDir()
		kc := filepath.Join(home, "Library", "Keychains", "login.keychain-db")
		return "macOS: " + kc, runTool(ctx, "security", "import", file, "-k", kc, "-f", "pkcs12", "-P", password)
	case "linux":
		db, err := NSSUserDB()
		if err != nil {
			return "", err
		}
		pw, cleanup, err := passwordFile(password)
		if err != nil {
			return "", err
		}
		defer cleanup()
		return "NSS: " + db, runTool(ctx, "pk12util", "-i", file, "-d", "sql:"+db, "-w", pw, "-K", "")
	}
	return "", fmt.Errorf("installing into the certificate store is not supported on %s: import %s by hand", runtime.GOOS, file)
}

// NSSUserDB returns $HOME/.pki/nssdb, creating an empty database there if
// there is none (Chromium on Linux reads it).
func NSSUserDB() (string, error) {
	home := os.Getenv("HOME")
	if home == "" {
		return "", fmt.Errorf("HOME is not set")
	}
	db := filepath.Join(home, ".pki", "nssdb")
	if _, err := os.Stat(filepath.Join(db, "cert9.db")); err == nil {
		return db, nil
	}
	if err := os.MkdirAll(db, 0o700); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := runTool(ctx, "certutil", "-N", "-d", "sql:"+db, "--empty-password"); err != nil {
		return "", err
	}
	return db, nil
}

func runTool(ctx context.Context, name string, args ...string) error {
	p, err := exec.LookPath(name)
	if err != nil {
		if name == "certutil" || name == "pk12util" {
			return fmt.Errorf("%s not found: install the NSS tools (Debian/Ubuntu: apt install libnss3-tools; Fedora: dnf install nss-tools)", name)
		}
		return fmt.Errorf("%s not found", name)
	}
	out, err := exec.CommandContext(ctx, p, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// passwordFile writes a password to a 0600 temporary file for tools that
// read it from a file (so it is not on their command line).
func passwordFile(pw string) (string, func(), error) {
	f, err := os.CreateTemp("", "zbcert-pw-*")
	if err != nil {
		return "", func() {}, err
	}
	name := f.Name()
	cleanup := func() { os.Remove(name) }
	if _, err := f.WriteString(pw + "\n"); err != nil {
		f.Close()
		cleanup()
		return "", func() {}, err
	}
	return name, cleanup, f.Close()
}
