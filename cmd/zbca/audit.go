package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
)

func (a *app) auditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Verify and read the hash-chained audit log"}
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Recompute the audit chain; fails if any entry was edited, removed or reordered",
		Long: `verify walks the whole audit log, recomputes each entry's SHA-256 chain hash
and compares the end of the chain with the head record. It exits with status
1 and names the first broken entry if anything was edited, removed or
reordered. Keep the printed head hash somewhere else (a ticket, a notebook)
to detect a rewrite of the whole log later.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := a.loadStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			n, head, err := st.VerifyAudit(cmd.Context())
			if err != nil {
				fmt.Fprintf(a.stdout, "AUDIT LOG BROKEN after %d good entries: %v\n", n, err)
				return exitCode(1)
			}
			fmt.Fprintf(a.stdout, "audit log intact: %d entries, head %s\n", n, head)
			return nil
		},
	}
	var after int64
	var limit int
	list := &cobra.Command{
		Use:   "list [--after SEQ] [--limit N]",
		Short: "Print audit entries as JSON lines",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := a.loadStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			evs, err := st.ListAudit(cmd.Context(), after, limit)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(a.stdout)
			for _, ev := range evs {
				if err := enc.Encode(ev); err != nil {
					return err
				}
			}
			return nil
		},
	}
	list.Flags().Int64Var(&after, "after", 0, "start after this sequence number")
	list.Flags().IntVar(&limit, "limit", 100, "at most this many")
	cmd.AddCommand(verify, list)
	return cmd
}
