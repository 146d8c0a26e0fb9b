package main

import (
	"runtime"

	"github.com/spf13/cobra"

	"github.com/zbca/zbca/zbcert"
)

func (a *app) exportCmd() *cobra.Command {
	var serial, user, file, profile string
	c := &cobra.Command{
		Use:   "export --p12 FILE [--serial S | --user USERNAME]",
		Short: "write a local certificate with its key as a password-protected PKCS#12 file (to move it to another computer)",
		Long: `export writes the certificate, its key and its chain as a PKCS#12 (.p12/.pfx)
file protected by a password you choose (asked twice; --password-stdin reads it
from standard input). --p12-profile legacy (3DES) for macOS and old Windows,
modern (AES) otherwise; the default suits this computer's OS.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			p, err := zbcert.ParseP12Profile(profile, runtime.GOOS)
			if err != nil {
				return err
			}
			e, err := a.chooseLocal(serial, user)
			if err != nil {
				return err
			}
			pw, err := a.newP12Password()
			if err != nil {
				return err
			}
			if err := a.home.Export(e, file, pw, p); err != nil {
				return err
			}
			a.printf("export.done", file, p)
			return nil
		},
	}
	c.Flags().StringVar(&file, "p12", "", "the PKCS#12 file to write (required)")
	c.Flags().StringVar(&serial, "serial", "", "which local certificate (see zbcert list)")
	c.Flags().StringVar(&user, "user", "", "the newest local certificate of this username")
	c.Flags().StringVar(&profile, "p12-profile", "", "modern or legacy (default for this OS: "+string(zbcert.DefaultP12Profile(runtime.GOOS))+")")
	c.Flags().BoolVar(&a.passwordStdin, "password-stdin", false, "read the PKCS#12 password from standard input")
	_ = c.MarkFlagRequired("p12")
	return c
}

func (a *app) importCmd() *cobra.Command {
	var install bool
	c := &cobra.Command{
		Use:   "import FILE.p12",
		Short: "store a certificate and key from a PKCS#12 file exported on another computer",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := a.secret(a.lang.T("p12password.open"))
			if err != nil {
				return err
			}
			e, err := a.home.Import(args[0], pw)
			if err != nil {
				return err
			}
			a.printf("import.done", e.Leaf().Subject.String(), e.Serial)
			if install {
				where, err := zbcert.InstallP12(cmd.Context(), args[0], pw)
				if err != nil {
					return err
				}
				a.printf("p12.installed", where)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&install, "install", false, "also import it into this computer's certificate store")
	c.Flags().BoolVar(&a.passwordStdin, "password-stdin", false, "read the PKCS#12 password from standard input")
	return c
}
