package zbcert

import (
	"crypto/x509"
	"fmt"
	"strings"

	"github.com/smallstep/truststore"
)

// TrustStores says where `zbcert setup` installs the root.
type TrustStores struct {
	System bool // the OS store (Windows, macOS Keychain, Linux ca-certificates; needs admin rights)
	NSS    bool // Firefox profiles and ~/.pki/nssdb (Chrome on Linux)
	Java   bool // $JAVA_HOME's cacerts
}

// ParseTrustStores reads a comma-separated list of system, nss, java, or
// "all".
func ParseTrustStores(s string) (TrustStores, error) {
	var t TrustStores
	for _, f := range strings.Split(s, ",") {
		switch strings.ToLower(strings.TrimSpace(f)) {
		case "all":
			t = TrustStores{System: true, NSS: true, Java: true}
		case "system":
			t.System = true
		case "nss":
			t.NSS = true
		case "java":
			t.Java = true
		case "":
		default:
			return t, fmt.Errorf("trust store %q: system, nss, java or all", f)
		}
	}
	return t, nil
}

// InstallRoot installs root with github.com/smallstep/truststore. NSS and
// Java are skipped when their tools or databases are absent (truststore's
// PreCheck); the system store is required when asked for.
func InstallRoot(root *x509.Certificate, t TrustStores) error {
	opts := []truststore.Option{truststore.WithPrefix(nssPrefix(root))}
	if t.NSS {
		opts = append(opts, truststore.WithFirefox())
	}
	if t.Java {
		opts = append(opts, truststore.WithJava())
	}
	if !t.System {
		opts = append(opts, truststore.WithNoSystem())
	}
	return truststore.Install(root, opts...)
}

// nssPrefix names the root in NSS databases by the start of its
// fingerprint, so that two zbca roots with the same subject do not clash.
func nssPrefix(root *x509.Certificate) string {
	return "zbca root " + strings.ReplaceAll(Fingerprint(root)[:23], ":", "") + " "
}

// NSSName is the nickname the root gets in NSS databases (certutil -L):
// truststore names it by the prefix and the serial.
func NSSName(root *x509.Certificate) string {
	return nssPrefix(root) + root.SerialNumber.String()
}

// RootInNSS tells whether root is in the NSS databases truststore knows.
func RootInNSS(root *x509.Certificate) bool {
	truststore.WithPrefix(nssPrefix(root))(nil) // Exists looks the root up by that name
	n, err := truststore.NewNSSTrust()
	if err != nil || n.PreCheck() != nil {
		return false
	}
	return n.Exists(root)
}
