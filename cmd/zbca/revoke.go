package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/internal/adminsock"
	"github.com/zbca/zbca/internal/runlock"
	"github.com/zbca/zbca/revocation"
)

func (a *app) certRevokeCmd() *cobra.Command {
	var reasonFlag string
	var offline bool
	cmd := &cobra.Command{
		Use:   "revoke SERIAL --reason REASON",
		Short: "Revoke a certificate (final); OCSP answers revoked at once, the CRL within a minute",
		Long: `revoke marks a certificate revoked in one transaction with its audit event.

When a server runs on this data directory, the revocation goes through it,
over the admin socket <data>/run/admin.sock (never over TCP), so that its
OCSP response is re-signed before this command returns. When none runs (the
socket does not answer and the data directory's serve lock is free), the
database is changed directly and the server picks the revocation up when it
starts; the command says which of the two happened.

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
			why := "no zbca server runs on " + a.cfg.DataDir
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

// revokeViaServer asks the server running on this data directory, through
// its admin socket. done is false when no server runs there. Success is
// printed only when the answer confirms this very revocation.
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
		Serial    string    `json:"serial"`
		Status    string    `json:"status"`
		RevokedAt time.Time `json:"revoked_at"`
		Reason    string    `json:"reason"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.Serial != serial || r.Status != "revoked" || r.RevokedAt.IsZero() || r.Reason != reason.String() {
		return true, fmt.Errorf("the server did not confirm the revocation of %s; check with 'zbca cert show %s' (its answer: %.200q)", serial, serial, b)
	}
	fmt.Fprintf(a.stdout, "revoked %s (%s) at %s; the server's OCSP responder answers revoked now, its CRL within %s\n",
		serial, reason, r.RevokedAt.Format(time.RFC3339), a.cfg.CRL.Delay.Duration)
	return true, nil
}

// adminCall sends a request to the admin API of the server running on this
// data directory, through the admin socket in its run directory (0700):
// never over TCP, where any local user may listen on the admin port while
// the server is down. Before anything is sent, the kernel's peer
// credentials must show that the process answering holds the data
// directory's serve lock.
//
// reachable is false, with a nil err, when no server runs here: nothing
// listens on the socket and the serve lock is free (or no admin token
// exists yet, so no server has ever run). A server that holds the lock but
// does not answer, or an answer from any other process, is an error. A
// non-2xx answer becomes an error with the server's detail.
func (a *app) adminCall(method, path string, body []byte) (resp []byte, reachable bool, err error) {
	dir := a.runDir()
	lockPath := filepath.Join(dir, "serve.lock")
	if _, err := os.Stat(a.cfg.DataDir); err == nil {
		// A data directory that another user could write to (or replace)
		// could hold their socket and their serve lock: no token goes there.
		if _, err := adminsock.SafeDataDir(a.cfg.DataDir, false); err != nil {
			return nil, true, fmt.Errorf("not asking a server in %s: %w", a.cfg.DataDir, err)
		}
	}
	token, terr := a.readAdminToken()
	conn, peer, err := adminsock.Dial(dir)
	if err != nil {
		pid, held, herr := runlock.Holder(lockPath)
		switch {
		case herr != nil:
			return nil, true, fmt.Errorf("%w; and the serve lock: %w", err, herr)
		case held && errors.Is(err, adminsock.ErrNoServer):
			return nil, true, fmt.Errorf("a zbca server (pid %d) holds the data directory %s, but nothing answers on its admin socket %s: retry once it has started, or use --offline to change the database directly", pid, a.cfg.DataDir, adminsock.Path(dir))
		case errors.Is(err, adminsock.ErrNoServer):
			return nil, false, nil
		}
		return nil, true, err
	}
	defer conn.Close()
	pid, held, herr := runlock.Holder(lockPath)
	switch {
	case herr != nil:
		return nil, true, herr
	case !held || peer.PID != pid:
		holder := "no zbca server holds it"
		if held {
			holder = fmt.Sprintf("pid %d holds it", pid)
		}
		return nil, true, fmt.Errorf("the process answering on %s (pid %d) does not hold the data directory's serve lock (%s): not sending it the admin token", adminsock.Path(dir), peer.PID, holder)
	case peer.UID != os.Getuid() && peer.UID != dirOwner(dir):
		return nil, true, fmt.Errorf("the process answering on %s runs as uid %d, neither this user nor the data directory's owner: not sending it the admin token", adminsock.Path(dir), peer.UID)
	case terr != nil:
		return nil, true, fmt.Errorf("reading the admin token: %w", terr)
	}
	// One request on the connection just checked; no other is dialled.
	once := conn
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(context.Context, string, string) (net.Conn, error) {
		if once == nil {
			return nil, errors.New("the admin socket connection was used already")
		}
		c := once
		once = nil
		return c, nil
	}}
	req, _ := http.NewRequest(method, "http://zbca-admin.sock"+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+string(token))
	req.Header.Set("Content-Type", "application/json")
	r, err := (&http.Client{Timeout: 60 * time.Second, Transport: tr}).Do(req)
	if err != nil {
		return nil, true, fmt.Errorf("asking the server (pid %d) on %s: %w", pid, adminsock.Path(dir), err)
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

// dirOwner is the uid owning dir, or -1.
func dirOwner(dir string) int {
	fi, err := os.Stat(dir)
	if err != nil {
		return -1
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}
