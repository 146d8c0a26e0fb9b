package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/revocation"
	"github.com/zbca/zbca/store"
	"github.com/zbca/zbca/verify"
)

func (a *app) apikeyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "apikey",
		Short: "Manage the submission sites' keys for the verification API",
		Long: `A submission site calls the verification API (POST /api/v1/verify, or
GET /api/v1/verify/nginx from nginx's auth_request) with its own key, sent
as "Authorization: Bearer <key>" or "X-API-Key: <key>". Only the key's
SHA-256 is stored. A revoked key stops working within ` + verify.KeyCacheTTL.String() + `.`,
	}
	cmd.AddCommand(a.apikeyAddCmd(), a.apikeyListCmd(), a.apikeyRevokeCmd())
	return cmd
}

func (a *app) apikeyAddCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "add NAME",
		Short:   "Make a key for a submission site and print it (once)",
		Example: `  zbca apikey add report-site-1 > report-site-1.key`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := verify.CheckKeyName(name); err != nil {
				return userError(err)
			}
			st, err := a.loadStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			key, rec, err := verify.NewAPIKey(name)
			if err != nil {
				return err
			}
			if err := st.AddAPIKey(cmd.Context(), rec, store.AuditEvent{Actor: "operator", Action: "apikey.add", Subject: name,
				Details: map[string]any{"prefix": rec.Prefix}}); err != nil {
				return userError(err)
			}
			// The key alone on standard output, so that it can be
			// redirected into a file; the advice on standard error.
			fmt.Fprintln(a.stdout, key)
			fmt.Fprintf(a.stderr, "API key %q made; it is shown only this once: give it to the site (Authorization: Bearer <key>)\n", name)
			return nil
		},
	}
}

type apikeyJSON struct {
	Name      string     `json:"name"`
	Prefix    string     `json:"prefix"`
	Status    string     `json:"status"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

func (a *app) apikeyListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the keys, active and revoked (never the keys themselves)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := a.loadStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			keys, err := st.ListAPIKeys(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				for _, k := range keys {
					j := apikeyJSON{Name: k.Name, Prefix: k.Prefix, Status: k.Status, CreatedAt: k.CreatedAt}
					if !k.RevokedAt.IsZero() {
						j.RevokedAt = &k.RevokedAt
					}
					if err := enc.Encode(j); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKEY\tSTATUS\tCREATED\tREVOKED")
			for _, k := range keys {
				revoked := ""
				if !k.RevokedAt.IsZero() {
					revoked = k.RevokedAt.Local().Format(time.DateTime)
				}
				fmt.Fprintf(tw, "%s\t%s…\t%s\t%s\t%s\n", k.Name, k.Prefix, k.Status, k.CreatedAt.Local().Format(time.DateTime), revoked)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per line")
	return cmd
}

func (a *app) apikeyRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a site's key (final); it stops working within " + verify.KeyCacheTTL.String(),
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := a.loadStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			k, err := st.RevokeAPIKey(cmd.Context(), args[0], store.AuditEvent{Actor: "operator", Action: "apikey.revoke", Subject: args[0]})
			if err != nil {
				return userError(err)
			}
			fmt.Fprintf(a.stdout, "revoked API key %s (%s…); a running server refuses it within %s\n", k.Name, k.Prefix, verify.KeyCacheTTL)
			return nil
		},
	}
}

// verifyService is the verification API's core, for serve: every issuing
// CA zbca has had, the store for keys and for statuses when the feed
// cannot vouch for its table, the verify section. Statuses come from the
// node's status feed (memory) while it is trusted.
func (a *app) verifyService(st *store.SQL, auth *ca.Authority, feed *revocation.Feed) (*verify.Service, error) {
	return verify.New(verify.Options{Root: auth.Root(), Issuers: auth.IssuingCerts(), Store: st, Keys: st, Current: feed,
		ExpiringDays: a.cfg.Verify.ExpiringDays, CacheSize: a.cfg.Verify.CacheSize, Logger: a.log})
}
