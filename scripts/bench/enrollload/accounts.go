package main

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"

	"golang.org/x/crypto/acme"
)

// savedAccount is an ACME account set up by an earlier run.
type savedAccount struct {
	KID string `json:"kid"`
	Key []byte `json:"key"` // PKCS #8
}

func saveAccounts(path string, clients [][]*acme.Client) error {
	out := make([][]savedAccount, len(clients))
	for i, row := range clients {
		for _, cl := range row {
			der, err := x509.MarshalPKCS8PrivateKey(cl.Key)
			if err != nil {
				return err
			}
			out[i] = append(out[i], savedAccount{KID: string(cl.KID), Key: der})
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

func loadAccounts(path string, conc, perClient int, base string, hc *http.Client) ([][]*acme.Client, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var in [][]savedAccount
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, err
	}
	if len(in) != conc || len(in[0]) != perClient {
		return nil, fmt.Errorf("%s holds %d×%d accounts, want %d×%d", path, len(in), len(in[0]), conc, perClient)
	}
	clients := make([][]*acme.Client, conc)
	for i, row := range in {
		for _, a := range row {
			k, err := x509.ParsePKCS8PrivateKey(a.Key)
			if err != nil {
				return nil, err
			}
			ek, ok := k.(*ecdsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("%s: not an ECDSA key", path)
			}
			clients[i] = append(clients[i], &acme.Client{Key: ek, KID: acme.KeyID(a.KID), DirectoryURL: base + "/acme/directory", HTTPClient: hc})
		}
	}
	return clients, nil
}
