package zbcert

import (
	"context"
	"errors"
	"fmt"
)

// SetupOptions are the inputs of `zbcert setup`.
type SetupOptions struct {
	Server      string // https://host:port
	Fingerprint string // expected SHA-256 of the root; empty: ask Confirm
	// Confirm shows the fingerprint to the user and returns the answer.
	Confirm func(subject, fingerprint string) (bool, error)
	Install *TrustStores // nil: do not install the root
}

// ErrNotConfirmed: the user did not confirm the root's fingerprint.
var ErrNotConfirmed = errors.New("root fingerprint not confirmed: nothing was changed")

// SetupResult says what setup did.
type SetupResult struct {
	Server      string `json:"server"`
	Fingerprint string `json:"root_sha256"`
	Subject     string `json:"root_subject"`
	Installed   bool   `json:"installed"`
}

// Setup fetches the root and the chain, has the fingerprint confirmed,
// installs the root and remembers the server.
func (h Home) Setup(ctx context.Context, o SetupOptions) (*SetupResult, error) {
	server, err := CheckServerURL(o.Server)
	if err != nil {
		return nil, err
	}
	ca, err := FetchCA(ctx, server)
	if err != nil {
		return nil, err
	}
	fp := Fingerprint(ca.Root)
	if o.Fingerprint != "" {
		want, err := NormalizeFingerprint(o.Fingerprint)
		if err != nil {
			return nil, err
		}
		if want != fp {
			return nil, fmt.Errorf("the server's root has fingerprint %s, not %s: nothing was changed (is this the right server?)", fp, want)
		}
	} else {
		if o.Confirm == nil {
			return nil, ErrNotConfirmed
		}
		ok, err := o.Confirm(ca.Root.Subject.String(), fp)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, ErrNotConfirmed
		}
	}
	res := &SetupResult{Server: server, Fingerprint: fp, Subject: ca.Root.Subject.String()}
	if o.Install != nil {
		if err := InstallRoot(ca.Root, *o.Install); err != nil {
			return nil, fmt.Errorf("installing the root: %w", err)
		}
		res.Installed = true
	}
	if err := h.SaveConfig(&Config{Server: server, RootSHA256: fp}, ca.Root, ca.ChainPEM); err != nil {
		return nil, err
	}
	return res, nil
}
