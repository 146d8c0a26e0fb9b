// Command zbcert is the enterprise's client tool for zbca: it installs the
// root, gets, renews, moves and revokes the client certificate, and
// diagnoses why certificate login to a submission site fails.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/zbca/zbca/zbcert"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	a := &app{stdin: bufio.NewReader(os.Stdin), stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	err := a.rootCmd().Execute()
	if err != nil {
		var ec exitCode
		if errors.As(err, &ec) {
			os.Exit(int(ec))
		}
		fmt.Fprintln(os.Stderr, "zbcert: "+a.explain(err))
		os.Exit(1)
	}
}

// exitCode: the command printed its own verdict and exits with this status.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

type app struct {
	configDir     string
	langFlag      string
	passwordStdin bool
	timeout       time.Duration

	lang   zbcert.Lang
	home   zbcert.Home
	stdin  *bufio.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "zbcert",
		Short: "zbcert — client certificates for the online direct-reporting system (联网直报证书工具)",
		Long: `zbcert gets the enterprise's client certificate from a zbca server and keeps it
on this computer; it replaces the legacy "root certificate and configuration tool"
and the troubleshooting steps of the help page.

  zbcert setup --server https://ca.example:8443    install the root, remember the server
  zbcert enroll --user USERNAME                    get a certificate (password always asked)
  zbcert renew                                     a new one before expiry, without the password
  zbcert list                                      local certificates, OCSP status, days left
  zbcert doctor --url https://submission-site      why does certificate login fail?

State is kept in the config directory: --config-dir, or $ZBCERT_HOME, or the
user's config directory + /zbcert. Output is Chinese or English by LC_ALL,
LC_MESSAGES or LANG (Chinese on Windows when unset), or --lang zh|en.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return a.init()
		},
	}
	f := root.PersistentFlags()
	f.StringVar(&a.configDir, "config-dir", "", "where zbcert keeps the server, keys and certificates (default $ZBCERT_HOME or <user config dir>/zbcert)")
	f.StringVar(&a.langFlag, "lang", "", "language of the output: zh or en (default from the locale)")
	root.AddCommand(a.setupCmd(), a.enrollCmd(), a.renewCmd(), a.reissueCmd(), a.revokeCmd(), a.listCmd(),
		a.exportCmd(), a.importCmd(), a.doctorCmd(), a.versionCmd())
	return root
}

func (a *app) init() error {
	a.lang = zbcert.DetectLang(a.getenv)
	if a.langFlag != "" {
		l, err := zbcert.ParseLang(a.langFlag)
		if err != nil {
			return err
		}
		a.lang = l
	}
	dir, err := zbcert.ConfigDir(a.configDir, a.getenv)
	if err != nil {
		return err
	}
	a.home = zbcert.Home{Dir: dir}
	return nil
}

// explain turns the errors users meet into their language.
func (a *app) explain(err error) string { return zbcert.Explain(a.lang, err) }

func (a *app) printf(key string, args ...any) {
	fmt.Fprintln(a.stdout, a.lang.T(key, args...))
}

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// secret reads one secret: the next line of standard input with
// --password-stdin, else from the terminal without echo.
func (a *app) secret(prompt string) (string, error) {
	if a.passwordStdin {
		line, err := a.stdin.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		s := strings.TrimRight(line, "\r\n")
		if s == "" {
			return "", errors.New("no password on standard input")
		}
		return s, nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", zbcert.ErrNeedPassword
	}
	fmt.Fprint(a.stderr, prompt)
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(a.stderr)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// password asks for the enterprise's password.
func (a *app) password(user string) (string, error) {
	return a.secret(a.lang.T("password.prompt", user))
}

// newP12Password asks for a new PKCS#12 password, twice on a terminal.
func (a *app) newP12Password() (string, error) {
	p1, err := a.secret(a.lang.T("p12password.prompt"))
	if err != nil || a.passwordStdin {
		return p1, err
	}
	p2, err := a.secret(a.lang.T("p12password.again"))
	if err != nil {
		return "", err
	}
	if p1 != p2 {
		return "", errors.New(a.lang.T("p12password.mismatch"))
	}
	return p1, nil
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{Use: "version", Short: "print the version", Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintln(a.stdout, "zbcert "+version)
			return nil
		}}
}
