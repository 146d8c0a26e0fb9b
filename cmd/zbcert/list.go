package main

import (
	"fmt"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func (a *app) listCmd() *cobra.Command {
	var asJSON, offline bool
	c := &cobra.Command{
		Use:   "list [--json]",
		Short: "the certificates on this computer, with OCSP status and days left",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var hc *http.Client
			if !offline {
				hc = &http.Client{Timeout: 10 * time.Second}
			}
			items, err := a.home.List(cmd.Context(), hc, time.Now())
			if err != nil && len(items) == 0 {
				return err
			}
			if asJSON {
				return a.printJSON(map[string]any{"config_dir": a.home.Dir, "certificates": items})
			}
			if len(items) == 0 {
				a.printf("list.empty")
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, a.lang.T("list.header"))
			for _, it := range items {
				ocsp := it.OCSP
				if it.Reason != "" {
					ocsp += " (" + it.Reason + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", it.Serial, it.User, it.NotAfter.Local().Format(time.DateOnly), it.DaysLeft, it.Validity, ocsp)
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().BoolVar(&offline, "offline", false, "do not ask OCSP")
	return c
}
