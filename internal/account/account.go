// Package account validates the fields of an enterprise account: username,
// enterprise name, enterprise ID (unified social credit code) and a password
// set by an operator.
//
// Every validator returns nil or an error of kind zerr.BadRequest whose
// message is short lowercase English, names the field, and never repeats a
// password. Offending characters are shown escaped (U+202E, '\x00'), so a
// message is safe to print on a terminal or in a web page.
package account

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/zbca/zbca/internal/zerr"
)

// Length limits. Username, name and enterprise ID go into the certificate
// subject (CN, O, serialNumber), whose upper bounds are 64 characters
// (RFC 5280, Appendix A.1: ub-common-name, ub-organization-name,
// ub-serial-number). The password limit matches internal/password.
const (
	MaxUsername    = 64 // runes
	MaxName        = 64 // runes
	MaxCode        = 64 // ASCII characters
	MinPassword    = 8  // bytes
	MaxPassword    = 1024
	socialCodeSize = 18
)

// ValidateUsername checks an account username: 1 to 64 characters, each a
// Unicode letter or digit or one of '.', '_', '-', '@'; it must not start or
// end with '.' or '-'. Chinese usernames are allowed.
func ValidateUsername(s string) error {
	if s == "" {
		return zerr.New(zerr.BadRequest, "username is empty")
	}
	if !utf8.ValidString(s) {
		return zerr.New(zerr.BadRequest, "username is not valid UTF-8")
	}
	if utf8.RuneCountInString(s) > MaxUsername {
		return zerr.New(zerr.BadRequest, "username is longer than %d characters", MaxUsername)
	}
	for _, r := range s {
		switch {
		case unicode.IsLetter(r), unicode.IsDigit(r), r == '.', r == '_', r == '-', r == '@':
		case unicode.IsControl(r):
			return zerr.New(zerr.BadRequest, "username contains control character %U", r)
		case unicode.IsSpace(r):
			return zerr.New(zerr.BadRequest, "username contains a space (%U)", r)
		default:
			return zerr.New(zerr.BadRequest, "username contains %q (%U): use letters, digits, '.', '_', '-' or '@'", r, r)
		}
	}
	if c := s[0]; c == '.' || c == '-' {
		return zerr.New(zerr.BadRequest, "username must not start with %q", c)
	}
	if c := s[len(s)-1]; c == '.' || c == '-' {
		return zerr.New(zerr.BadRequest, "username must not end with %q", c)
	}
	return nil
}

// ValidateName checks an enterprise name, which becomes the certificate's
// subject O: valid UTF-8, 1 to 64 characters, no leading or trailing space,
// no control characters and no invisible formatting characters such as the
// bidirectional overrides (U+202E) that can make a name read differently
// from what it is.
func ValidateName(s string) error {
	if !utf8.ValidString(s) {
		return zerr.New(zerr.BadRequest, "name is not valid UTF-8")
	}
	t := strings.TrimSpace(s)
	if t == "" {
		return zerr.New(zerr.BadRequest, "name is empty")
	}
	if t != s {
		return zerr.New(zerr.BadRequest, "name has leading or trailing space")
	}
	if utf8.RuneCountInString(s) > MaxName {
		return zerr.New(zerr.BadRequest, "name is longer than %d characters", MaxName)
	}
	for _, r := range s {
		switch {
		case unicode.IsControl(r), r == '\u2028', r == '\u2029': // Cc, Zl, Zp
			return zerr.New(zerr.BadRequest, "name contains control character %U", r)
		case unicode.Is(unicode.Cf, r) && r != '\u200c' && r != '\u200d':
			// Zero-width joiner and non-joiner are needed to spell some
			// scripts; every other format character is invisible.
			return zerr.New(zerr.BadRequest, "name contains invisible formatting character %U", r)
		case r == utf8.RuneError:
			return zerr.New(zerr.BadRequest, "name contains U+FFFD, a sign that the text was decoded with the wrong encoding")
		}
	}
	return nil
}

// ValidateCode checks an enterprise ID, which becomes the certificate's
// subject serialNumber, a PrintableString. It may be empty; otherwise it is
// 1 to 64 characters of 0-9 and A-Z. An ID of exactly 18 characters is a
// unified social credit code and must also pass the GB 32100-2015 check.
func ValidateCode(s string) error {
	if s == "" {
		return nil
	}
	if len(s) > MaxCode {
		return zerr.New(zerr.BadRequest, "enterprise ID is longer than %d characters", MaxCode)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9', 'A' <= c && c <= 'Z':
		case 'a' <= c && c <= 'z':
			return zerr.New(zerr.BadRequest, "enterprise ID contains lower-case letters: write them in upper case")
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				return zerr.New(zerr.BadRequest, "enterprise ID is not valid UTF-8")
			}
			return zerr.New(zerr.BadRequest, "enterprise ID contains %q (%U): use only digits 0-9 and letters A-Z", r, r)
		}
	}
	if len(s) == socialCodeSize {
		return checkSocialCode(s)
	}
	return nil
}

// socialCodeChars is the GB 32100-2015 alphabet; a character's value is its
// index. I, O, S, V and Z are not used.
const socialCodeChars = "0123456789ABCDEFGHJKLMNPQRTUWXY"

// socialCodeWeights are the GB 32100-2015 weights of the first 17
// characters: 3^i mod 31.
var socialCodeWeights = [socialCodeSize - 1]int{1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28}

// checkSocialCode checks the alphabet and check character of an 18-character
// unified social credit code whose characters are already 0-9A-Z.
func checkSocialCode(s string) error {
	if i := strings.IndexAny(s, "IOSVZ"); i >= 0 {
		return zerr.New(zerr.BadRequest,
			"enterprise ID of 18 characters is a unified social credit code, which never contains %q (character %d)", s[i], i+1)
	}
	want, _ := socialCodeCheckChar(s[:socialCodeSize-1])
	if s[socialCodeSize-1] != want {
		return zerr.New(zerr.BadRequest, "enterprise ID of 18 characters is a unified social credit code, and its check character does not match: is it mistyped?")
	}
	return nil
}

// socialCodeCheckChar returns the GB 32100-2015 check character of the first
// 17 characters of a unified social credit code. ok is false if body is not
// 17 characters of the code's alphabet.
func socialCodeCheckChar(body string) (c byte, ok bool) {
	if len(body) != socialCodeSize-1 {
		return 0, false
	}
	sum := 0
	for i := 0; i < len(body); i++ {
		v := strings.IndexByte(socialCodeChars, body[i])
		if v < 0 {
			return 0, false
		}
		sum += v * socialCodeWeights[i]
	}
	return socialCodeChars[(31-sum%31)%31], true
}

// ValidatePassword checks a password chosen by an operator: 8 to 1024 bytes
// of valid UTF-8 without control characters. The error never contains the
// password.
func ValidatePassword(s string) error {
	switch {
	case len(s) < MinPassword:
		return zerr.New(zerr.BadRequest, "password is shorter than %d bytes", MinPassword)
	case len(s) > MaxPassword:
		return zerr.New(zerr.BadRequest, "password is longer than %d bytes", MaxPassword)
	case !utf8.ValidString(s):
		return zerr.New(zerr.BadRequest, "password is not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return zerr.New(zerr.BadRequest, "password contains a control character")
		}
	}
	return nil
}
