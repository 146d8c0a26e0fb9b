package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/zbca/zbca/store"
)

// endsAccess is what passwd, disable and logout tell the operator.
const endsAccess = "every ACME account and portal session made before has ended, on every node"

func (a *app) enterpriseLogoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout USERNAME",
		Short: "End all access: every ACME account and portal session of the enterprise, on every node",
		Long: `logout ends every ACME account and portal session that the enterprise has
made so far, on every node, from their next request on. Certificates stay
valid (revoke them with "zbca cert revoke"); the password stays the same.
To get a certificate again the enterprise proves its password again
("zbcert enroll", the portal).

passwd and disable end all access the same way; enable revives nothing.`,
		Example: `  zbca enterprise logout acme`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := a.loadStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			epoch, err := st.EndAccess(cmd.Context(), args[0], store.AuditEvent{Actor: "operator", Action: "enterprise.logout", Subject: args[0]})
			if err != nil {
				return userError(err)
			}
			fmt.Fprintf(a.stdout, "enterprise %s: %s (credential epoch %d)\n", args[0], endsAccess, epoch)
			return nil
		},
	}
}

type acmeAccountJSON struct {
	ID         string     `json:"id"`
	Status     string     `json:"status"` // valid, deactivated, revoked, ended (older credential epoch), disabled (enterprise)
	Thumbprint string     `json:"key_thumbprint"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	Epoch      int64      `json:"credential_epoch"`
	EABKID     string     `json:"eab_kid"`
}

// accountStatus is what an operator needs to know of an account: whether
// it can act, and if not, why.
func accountStatus(a *store.ACMEAccount) string {
	switch {
	case a.Status != "valid":
		return a.Status
	case a.EnterpriseStatus != store.StatusActive:
		return "disabled"
	case a.Epoch != a.EnterpriseEpoch:
		return "ended"
	}
	return "valid"
}

func (a *app) enterpriseAccountsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "accounts USERNAME [--json]",
		Short: "List the enterprise's ACME accounts (zbcert and other ACME clients)",
		Long: `accounts lists the ACME accounts bound to the enterprise, oldest first:
when each was made, when it last ordered a certificate, its key's RFC 7638
thumbprint, and its status:

  valid        may order certificates
  ended        made before the last passwd, disable or logout: refused
  disabled     the enterprise is disabled: refused
  deactivated  ended by its own client`,
		Example: `  zbca enterprise accounts acme
  zbca enterprise accounts acme --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := a.loadStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			e, err := st.GetEnterprise(cmd.Context(), args[0])
			if err != nil {
				return userError(err)
			}
			list, err := st.ListACMEAccounts(cmd.Context(), e.ID)
			if err != nil {
				return err
			}
			out := make([]acmeAccountJSON, 0, len(list))
			for i := range list {
				ac := &list[i]
				j := acmeAccountJSON{ID: ac.ID, Status: accountStatus(ac), Thumbprint: ac.Thumbprint, CreatedAt: ac.CreatedAt.UTC(), Epoch: ac.Epoch, EABKID: ac.EABKID}
				if !ac.LastUsedAt.IsZero() {
					t := ac.LastUsedAt.UTC()
					j.LastUsedAt = &t
				}
				out = append(out, j)
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(map[string]any{"enterprise": e.Username, "credential_epoch": e.CredentialEpoch, "accounts": out})
			}
			if len(out) == 0 {
				fmt.Fprintf(a.stdout, "enterprise %s has no ACME account\n", e.Username)
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ACCOUNT\tSTATUS\tCREATED\tLAST ORDER\tKEY THUMBPRINT")
			for _, j := range out {
				last := "never"
				if j.LastUsedAt != nil {
					last = j.LastUsedAt.Local().Format("2006-01-02 15:04")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", j.ID, j.Status, j.CreatedAt.Local().Format("2006-01-02 15:04"), last, j.Thumbprint)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "JSON output")
	return cmd
}
