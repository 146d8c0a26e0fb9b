package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/revocation"
)

func (a *app) certRevokeCmd() *cobra.Command {
	var reasonFlag string
	var offline bool
	cmd := &cobra.Command{
		Use:   "revoke SERIAL --reason REASON",
		Short: "Revoke a certificate (final); OCSP answers revoked at once, the CRL within a minute",
		Long: `revoke marks a certificate revoked in one transaction with its audit event.

When the server runs (its admin listener answers), the revocation goes
through it, so that its OCSP response is re-signed before this command
returns. Otherwise the database is changed directly and the server picks the
revocation up when it starts.

Reasons: unspecified, keyCompromise, cACompromise, affiliationChanged,
superseded, cessationOfOperation, privilegeWithdrawn (names in any case, with
or without dashes, or their RFC 5280 numbers).`,
		Example: `  zbca cert revoke 3a9f…c2 --reason keyCompromise`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			serial, err := ca.NormalizeSerial(args[0])
			if err != nil {
				return userError(err)
			}
			reason, err := revocation.ParseReason(reasonFlag)
			if err != nil {
				return userError(err)
			}
			if !reason.OperatorMay() {
				return fmt.Errorf("reason %s is not used: revocation in zbca is final", reason)
			}
			st, err := a.loadStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			if !offline {
				done, err := a.revokeViaServer(serial, reason)
				if done || err != nil {
					return err
				}
			}
			svc := &revocation.Service{Store: st, Logger: a.log}
			rec, err := svc.Revoke(cmd.Context(), serial, reason, "operator", revocation.ByOperator)
			if err != nil {
				return userError(err)
			}
			why := "no server answered on " + a.cfg.Listen.Admin
			if offline {
				why = "--offline"
			}
			fmt.Fprintf(a.stdout, "revoked %s (%s) at %s in the database (%s): a running server picks the revocation up within seconds, a stopped one when it starts\n",
				rec.Serial, reason, rec.RevokedAt.Format(time.RFC3339), why)
			return nil
		},
	}
	cmd.Flags().StringVar(&reasonFlag, "reason", "", "revocation reason (required)")
	cmd.Flags().BoolVar(&offline, "offline", false, "change the database directly even if the server runs")
	_ = cmd.MarkFlagRequired("reason")
	return cmd
}

// revokeViaServer asks the running server's admin API. done is false when
// no server answers on the admin address.
func (a *app) revokeViaServer(serial string, reason revocation.Reason) (done bool, err error) {
	body, _ := json.Marshal(map[string]string{"reason": reason.String()})
	b, reachable, err := a.adminCall(http.MethodPost, "/admin/v1/certificates/"+serial+"/revoke", body)
	if !reachable {
		return false, nil
	}
	if err != nil {
		return true, err
	}
	var r struct {
		RevokedAt time.Time `json:"revoked_at"`
	}
	_ = json.Unmarshal(b, &r)
	fmt.Fprintf(a.stdout, "revoked %s (%s) at %s; the server's OCSP responder answers revoked now, its CRL within %s\n",
		serial, reason, r.RevokedAt.Format(time.RFC3339), a.cfg.CRL.Delay.Duration)
	return true, nil
}

// adminCall sends a request to the running server's admin API. reachable
// is false when no server answers on the admin address (or no admin token
// exists yet); err is then nil. A non-2xx answer becomes an error with the
// server's detail.
func (a *app) adminCall(method, path string, body []byte) (resp []byte, reachable bool, err error) {
	token, err := a.readAdminToken()
	if err != nil {
		return nil, false, nil // no token yet: no server has run
	}
	url := "http://" + hostPort(a.cfg.Listen.Admin, "127.0.0.1") + path
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+string(token))
	req.Header.Set("Content-Type", "application/json")
	r, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, false, nil
		}
		return nil, true, fmt.Errorf("asking the server at %s: %w", url, err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if r.StatusCode/100 != 2 {
		var p struct {
			Detail string `json:"detail"`
		}
		_ = json.Unmarshal(b, &p)
		if p.Detail == "" {
			p.Detail = strings.TrimSpace(string(b))
		}
		return nil, true, errors.New(p.Detail)
	}
	return b, true, nil
}
