package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/zbca/zbca/internal/account"
	"github.com/zbca/zbca/internal/password"
	"github.com/zbca/zbca/store"
)

func (a *app) enterpriseCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "enterprise",
		Aliases: []string{"ent"},
		Short:   "Manage enterprise accounts",
	}
	cmd.AddCommand(a.enterpriseAddCmd(), a.enterpriseImportCmd(), a.enterpriseListCmd(), a.enterpriseShowCmd(),
		a.enterpriseStatusCmd("disable", store.StatusDisabled), a.enterpriseStatusCmd("enable", store.StatusActive), a.enterprisePasswdCmd(),
		a.enterpriseSetCmd(), a.enterpriseLogoutCmd(), a.enterpriseAccountsCmd())
	return cmd
}

// readPassword reads a password from the first line of stdin (fromStdin),
// or prompts twice on a terminal.
func (a *app) readPassword(fromStdin bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(a.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", errors.New("no password on standard input")
		}
		return pw, account.ValidatePassword(pw)
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", errors.New("standard input is not a terminal: use --password-stdin")
	}
	fmt.Fprint(a.stderr, "Password: ")
	p1, err := term.ReadPassword(fd)
	fmt.Fprintln(a.stderr)
	if err != nil {
		return "", err
	}
	if err := account.ValidatePassword(string(p1)); err != nil {
		return "", err
	}
	fmt.Fprint(a.stderr, "Repeat password: ")
	p2, err := term.ReadPassword(fd)
	fmt.Fprintln(a.stderr)
	if err != nil {
		return "", err
	}
	if string(p1) != string(p2) {
		return "", errors.New("the two passwords differ")
	}
	return string(p1), nil
}

func (a *app) enterpriseAddCmd() *cobra.Command {
	var name, code string
	var fromStdin bool
	cmd := &cobra.Command{
		Use:   "add USERNAME --name NAME [--id CODE] [--password-stdin]",
		Short: "Add an enterprise account",
		Example: `  zbca enterprise add acme --name "某某科技有限公司" --id 91350100M000100Y43
  echo 's3cret-passw0rd' | zbca enterprise add acme --name "ACME Ltd" --password-stdin`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			username := args[0]
			if err := account.ValidateUsername(username); err != nil {
				return fmt.Errorf("username %q: %w", username, err)
			}
			if err := account.ValidateName(name); err != nil {
				return fmt.Errorf("--name: %w", err)
			}
			if err := account.ValidateCode(code); err != nil {
				return fmt.Errorf("--id: %w", err)
			}
			if err := a.load(slog.LevelWarn); err != nil {
				return err
			}
			pw, err := a.readPassword(fromStdin)
			if err != nil {
				return err
			}
			hash, err := password.Hash(pw, password.Default)
			if err != nil {
				return err
			}
			st, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			e := &store.Enterprise{Username: username, Name: name, Code: code, PasswordHash: hash}
			if err := st.AddEnterprise(cmd.Context(), e, store.AuditEvent{Actor: "operator", Action: "enterprise.add", Subject: username,
				Details: map[string]any{"name": name, "id": code}}); err != nil {
				return userError(err)
			}
			fmt.Fprintf(a.stdout, "added enterprise %s (%s)\n", username, name)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "enterprise name, written into certificates as O (required)")
	cmd.Flags().StringVar(&code, "id", "", "enterprise ID, such as the unified social credit code")
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of standard input")
	_ = cmd.MarkFlagRequired("name")
	return cmd
}

type enterpriseJSON struct {
	Username  string    `json:"username"`
	Name      string    `json:"name"`
	ID        string    `json:"id,omitempty"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func toEnterpriseJSON(e *store.Enterprise) enterpriseJSON {
	return enterpriseJSON{Username: e.Username, Name: e.Name, ID: e.Code, Status: e.Status, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}
}

func (a *app) enterpriseListCmd() *cobra.Command {
	var asJSON bool
	var after string
	var limit int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List enterprise accounts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := a.loadStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			if !asJSON {
				fmt.Fprintln(tw, "USERNAME\tNAME\tID\tSTATUS\tCREATED")
			}
			enc := json.NewEncoder(a.stdout)
			n := 0
			for limit <= 0 || n < limit {
				page := 1000
				if limit > 0 {
					page = min(page, limit-n)
				}
				list, err := st.ListEnterprises(cmd.Context(), after, page)
				if err != nil {
					return err
				}
				for i := range list {
					e := &list[i]
					if asJSON {
						if err := enc.Encode(toEnterpriseJSON(e)); err != nil {
							return err
						}
					} else {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Username, e.Name, e.Code, e.Status, e.CreatedAt.Local().Format(time.DateOnly))
					}
				}
				n += len(list)
				if len(list) < page {
					break
				}
				after = list[len(list)-1].Username
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per line")
	cmd.Flags().StringVar(&after, "after", "", "start after this username")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many (0: all)")
	return cmd
}

func (a *app) enterpriseShowCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show USERNAME",
		Short: "Show an enterprise account and its certificates",
		Args:  cobra.ExactArgs(1),
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
			certs, err := st.ListCertificates(cmd.Context(), store.CertFilter{Username: e.Username, Limit: 1000})
			if err != nil {
				return err
			}
			if asJSON {
				out := struct {
					enterpriseJSON
					Certificates []certJSON `json:"certificates"`
				}{enterpriseJSON: toEnterpriseJSON(e), Certificates: []certJSON{}}
				for i := range certs {
					out.Certificates = append(out.Certificates, toCertJSON(&certs[i], time.Now()))
				}
				return json.NewEncoder(a.stdout).Encode(out)
			}
			keygen, err := st.ServerKeygen(cmd.Context(), e.Username)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "username  %s\nname      %s\nid        %s\nstatus    %s\ncreated   %s\nupdated   %s\nserver-side keygen  %s\ncertificates: %d\n",
				e.Username, e.Name, e.Code, e.Status, e.CreatedAt.Local().Format(time.RFC3339), e.UpdatedAt.Local().Format(time.RFC3339), onOff(keygen), len(certs))
			printCertTable(a.stdout, certs, time.Now())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "JSON output")
	return cmd
}

func (a *app) enterpriseStatusCmd(verb, status string) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " USERNAME",
		Short: strings.ToUpper(verb[:1]) + verb[1:] + " an enterprise account (a disabled account gets no certificates; disable also ends all access)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := a.loadStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.SetEnterpriseStatus(cmd.Context(), args[0], status, store.AuditEvent{Actor: "operator", Action: "enterprise." + verb, Subject: args[0]}); err != nil {
				return userError(err)
			}
			fmt.Fprintf(a.stdout, "enterprise %s is now %s\n", args[0], status)
			if status == store.StatusDisabled {
				fmt.Fprintf(a.stdout, "%s; enable revives none of them\n", endsAccess)
			}
			return nil
		},
	}
}

func (a *app) enterprisePasswdCmd() *cobra.Command {
	var fromStdin bool
	cmd := &cobra.Command{
		Use:   "passwd USERNAME [--password-stdin]",
		Short: "Set an enterprise account's password (and end all access made with the old one)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(slog.LevelWarn); err != nil {
				return err
			}
			pw, err := a.readPassword(fromStdin)
			if err != nil {
				return err
			}
			hash, err := password.Hash(pw, password.Default)
			if err != nil {
				return err
			}
			st, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.SetPasswordHash(cmd.Context(), args[0], hash, store.AuditEvent{Actor: "operator", Action: "enterprise.passwd", Subject: args[0]}); err != nil {
				return userError(err)
			}
			fmt.Fprintf(a.stdout, "password of %s changed; %s\n", args[0], endsAccess)
			return nil
		},
	}
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of standard input")
	return cmd
}

func (a *app) enterpriseSetCmd() *cobra.Command {
	var serverKeygen bool
	cmd := &cobra.Command{
		Use:   "set USERNAME --server-keygen[=false]",
		Short: "Change an enterprise account's settings",
		Long: `set changes an account's settings:

  --server-keygen   let the portal generate the key pair on the server and
                    hand it out in a PKCS#12 file (off by default: the key
                    is made in the browser). The server never stores or logs
                    the key; turn it on only for users whose browser cannot.`,
		Example: `  zbca enterprise set acme --server-keygen
  zbca enterprise set acme --server-keygen=false`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("server-keygen") {
				return errors.New("nothing to set: give --server-keygen or --server-keygen=false")
			}
			st, err := a.loadStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.SetServerKeygen(cmd.Context(), args[0], serverKeygen, store.AuditEvent{Actor: "operator", Action: "enterprise.set", Subject: args[0],
				Details: map[string]any{"server_keygen": serverKeygen}}); err != nil {
				return userError(err)
			}
			fmt.Fprintf(a.stdout, "server-side key generation for %s is now %s\n", args[0], onOff(serverKeygen))
			return nil
		},
	}
	cmd.Flags().BoolVar(&serverKeygen, "server-keygen", false, "allow server-side key generation in the portal")
	return cmd
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
