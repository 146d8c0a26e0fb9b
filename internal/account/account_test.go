package account

import (
	"errors"
	"strings"
	"testing"
	"unicode"

	"github.com/zbca/zbca/internal/zerr"
)

type validatorCase struct {
	name    string
	in      string
	wantErr string // substring of the error; "" means valid
}

func runCases(t *testing.T, validate func(string) error, cases []validatorCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := validate(tc.in)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got nil, want error containing %q", tc.wantErr)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.wantErr) {
				t.Errorf("got %q, want it to contain %q", msg, tc.wantErr)
			}
			if !errors.Is(err, zerr.BadRequest) {
				t.Errorf("error %q is not zerr.BadRequest", msg)
			}
			checkMessage(t, msg)
		})
	}
}

// checkMessage checks the style of an error message and that it is safe to
// print: lowercase start, no trailing period, printable characters only
// (hostile characters must be shown escaped).
func checkMessage(t *testing.T, msg string) {
	t.Helper()
	if msg == "" || strings.HasSuffix(msg, ".") || (msg[0] >= 'A' && msg[0] <= 'Z') {
		t.Errorf("message %q: want lowercase start and no trailing period", msg)
	}
	for _, r := range msg {
		if !unicode.IsPrint(r) {
			t.Errorf("message %q contains unescaped %U", msg, r)
			break
		}
	}
}

var (
	tenKB   = strings.Repeat("a", 10*1024)
	tenKBZh = strings.Repeat("企", 10*1024/3)
)

func TestValidateUsername(t *testing.T) {
	runCases(t, ValidateUsername, []validatorCase{
		{"ascii", "acme", ""},
		{"one char", "a", ""},
		{"digits only", "12345", ""},
		{"punctuation inside", "acme.corp_01-x@example.com", ""},
		{"chinese", "福州某某科技", ""},
		{"chinese with digits", "某某科技2号", ""},
		{"underscore ends", "_acme_", ""},
		{"at ends", "@acme@", ""},
		{"64 runes", strings.Repeat("企", 64), ""},
		{"64 ascii", strings.Repeat("a", 64), ""},
		{"empty", "", "username is empty"},
		{"65 runes", strings.Repeat("企", 65), "longer than 64 characters"},
		{"10 KB", tenKB, "longer than 64 characters"},
		{"10 KB chinese", tenKBZh, "longer than 64 characters"},
		{"space", "acme corp", "contains a space (U+0020)"},
		{"leading space", " acme", "contains a space"},
		{"ideographic space", "某某\u3000科技", "contains a space (U+3000)"},
		{"nbsp", "acme\u00a0corp", "contains a space (U+00A0)"},
		{"tab", "acme\tcorp", "control character U+0009"},
		{"newline", "acme\n", "control character U+000A"},
		{"NUL", "acme\x00", "control character U+0000"},
		{"escape", "acme\x1b[31m", "control character U+001B"},
		{"DEL", "acme\x7f", "control character U+007F"},
		{"C1 control", "acme\u0085", "control character U+0085"},
		{"RTL override", "acme\u202egpj.exe", `'\u202e' (U+202E)`},
		{"zero width space", "ac\u200bme", "U+200B"},
		{"BOM", "\ufeffacme", "U+FEFF"},
		{"replacement char", "acme\ufffd", "U+FFFD"},
		{"invalid UTF-8", "acme\xff", "not valid UTF-8"},
		{"GBK bytes", "\xc4\xb3\xc4\xb3\xbf\xc6\xbc\xbc", "not valid UTF-8"},
		{"truncated UTF-8", "企"[:2], "not valid UTF-8"},
		{"surrogate half", "\xed\xa0\x80", "not valid UTF-8"},
		{"slash", "acme/corp", `'/'`},
		{"colon", "acme:corp", `':'`},
		{"percent", "acme%2F", `'%'`},
		{"quote", `acme"`, `'"'`},
		{"fullwidth at sign", "acme＠corp", "U+FF20"},
		{"leading dot", ".acme", "must not start with '.'"},
		{"leading hyphen", "-acme", "must not start with '-'"},
		{"trailing dot", "acme.", "must not end with '.'"},
		{"trailing hyphen", "acme-", "must not end with '-'"},
		{"only dot", ".", "must not start with '.'"},
		{"dot dot", "..", "must not start with '.'"},
	})
}

func TestValidateName(t *testing.T) {
	runCases(t, ValidateName, []validatorCase{
		{"chinese", "福州某某科技有限公司", ""},
		{"ascii", "Acme Corp, Inc.", ""},
		{"inner spaces", "Acme  Corp", ""},
		{"brackets", "某某（福建）科技有限公司", ""},
		{"one char", "企", ""},
		{"64 runes", strings.Repeat("企", 64), ""},
		{"zwnj", "می\u200cخواهم", ""},
		{"private use", "某\ue000科技", ""},
		{"empty", "", "name is empty"},
		{"only spaces", "   ", "name is empty"},
		{"only ideographic space", "\u3000", "name is empty"},
		{"leading space", " Acme", "leading or trailing space"},
		{"trailing space", "Acme ", "leading or trailing space"},
		{"trailing ideographic space", "某某科技\u3000", "leading or trailing space"},
		{"trailing newline", "Acme\n", "leading or trailing space"},
		{"65 runes", strings.Repeat("企", 65), "longer than 64 characters"},
		{"10 KB", tenKB, "longer than 64 characters"},
		{"10 KB chinese", tenKBZh, "longer than 64 characters"},
		{"NUL", "Acme\x00Corp", "control character U+0000"},
		{"inner newline", "Acme\nCorp", "control character U+000A"},
		{"inner tab", "Acme\tCorp", "control character U+0009"},
		{"escape", "Acme\x1b[2J", "control character U+001B"},
		{"C1 control", "Acme\u009bCorp", "control character U+009B"},
		{"line separator", "Acme\u2028Corp", "control character U+2028"},
		{"RTL override", "Acme\u202egpj.exe", "invisible formatting character U+202E"},
		{"RTL isolate", "Acme\u2067Corp", "invisible formatting character U+2067"},
		{"zero width space", "Ac\u200bme", "invisible formatting character U+200B"},
		{"BOM", "\ufeffAcme", "invisible formatting character U+FEFF"},
		{"replacement char", "某某\ufffd科技", "U+FFFD"},
		{"invalid UTF-8", "Acme\xff", "not valid UTF-8"},
		{"GBK bytes", "\xc4\xb3\xc4\xb3\xbf\xc6\xbc\xbc", "not valid UTF-8"},
		{"overlong NUL", "Acme\xc0\x80", "not valid UTF-8"},
	})
}

// mustSocialCode returns body followed by its check character.
func mustSocialCode(t *testing.T, body string) string {
	t.Helper()
	c, ok := socialCodeCheckChar(body)
	if !ok {
		t.Fatalf("socialCodeCheckChar(%q) not ok", body)
	}
	return body + string(c)
}

func TestValidateCode(t *testing.T) {
	runCases(t, ValidateCode, []validatorCase{
		{"empty", "", ""},
		{"one digit", "1", ""},
		{"short", "ABC123", ""},
		{"17 chars, no check", "12345678901234567", ""},
		{"19 chars, no check", "1234567890123456789", ""},
		{"9 chars with letters not used by USCC", "ZZZOOOIII", ""},
		{"64 chars", strings.Repeat("A", 64), ""},
		// Codes published in the national enterprise credit register.
		{"USCC from the ca tests", "91350100M000100Y43", ""},
		{"USCC Huawei", "914403001922038216", ""},
		{"USCC Tencent", "9144030071526726XG", ""},
		{"USCC Alibaba", "91330100716105852F", ""},
		// The check character of 91110000100000000 is R, not 0.
		{"USCC wrong check", "911100001000000000", "check character does not match"},
		{"USCC lower case", "91350100m000100y43", "lower-case"},
		{"USCC with I", "91350100I000100Y43", `never contains 'I' (character 9)`},
		{"USCC with O", "9135010O0000100Y43", `never contains 'O'`},
		{"USCC with S", "91350100S000100Y43", `never contains 'S'`},
		{"USCC with V", "91350100V000100Y43", `never contains 'V'`},
		{"USCC with Z", "91350100M000100Y4Z", `never contains 'Z'`},
		{"65 chars", strings.Repeat("A", 65), "longer than 64 characters"},
		{"10 KB", tenKB, "longer than 64 characters"},
		{"lower case", "abc", "lower-case"},
		{"space", "9135 0100", `' ' (U+0020)`},
		{"hyphen", "91350100-M000100Y43", `'-'`},
		{"NUL", "123\x00", `'\x00' (U+0000)`},
		{"fullwidth digit", "１２３", `'１' (U+FF11)`},
		{"chinese", "闽123", `'闽' (U+95FD)`},
		{"RTL override", "123\u202e456", `'\u202e' (U+202E)`},
		{"invalid UTF-8", "123\xff", "not valid UTF-8"},
	})
}

func TestSocialCodeWeights(t *testing.T) {
	w := 1
	for i, got := range socialCodeWeights {
		if got != w {
			t.Errorf("weight %d = %d, want 3^%d mod 31 = %d", i, got, i, w)
		}
		w = w * 3 % 31
	}
	if len(socialCodeChars) != 31 {
		t.Errorf("alphabet has %d characters, want 31", len(socialCodeChars))
	}
}

// TestSocialCodeConstructed builds codes from bodies by computing the check
// character, then checks that every change of a single character to another
// character of the alphabet is detected.
func TestSocialCodeConstructed(t *testing.T) {
	bodies := []string{
		"91350100M00010", // padded below
		"12100000400000000",
		"91110000MA0000000",
		"Y1000000000000000",
		"5311000050000000K",
		"93441900MA4WXYRTU",
	}
	for _, body := range bodies {
		body = (body + "00000000000000000")[:17]
		code := mustSocialCode(t, body)
		t.Run(code, func(t *testing.T) {
			if err := ValidateCode(code); err != nil {
				t.Fatalf("constructed code: %v", err)
			}
			for i := range len(code) {
				for j := range len(socialCodeChars) {
					c := socialCodeChars[j]
					if c == code[i] {
						continue
					}
					bad := code[:i] + string(c) + code[i+1:]
					if err := ValidateCode(bad); err == nil {
						t.Errorf("%s (position %d changed to %c) passed", bad, i+1, c)
					}
				}
			}
			// Swapping two adjacent different characters is also detected.
			for i := 0; i+1 < len(code); i++ {
				if code[i] == code[i+1] {
					continue
				}
				bad := code[:i] + string(code[i+1]) + string(code[i]) + code[i+2:]
				if err := ValidateCode(bad); err == nil {
					t.Errorf("%s (positions %d and %d swapped) passed", bad, i+1, i+2)
				}
			}
		})
	}
}

func TestSocialCodeCheckCharAllValues(t *testing.T) {
	// Every check value 0..30 is reachable by varying the last body
	// character, and each constructed code is valid.
	seen := map[byte]bool{}
	for j := range len(socialCodeChars) {
		code := mustSocialCode(t, "9135010000000000"+string(socialCodeChars[j]))
		if err := ValidateCode(code); err != nil {
			t.Errorf("%s: %v", code, err)
		}
		seen[code[17]] = true
	}
	if len(seen) != 31 {
		t.Errorf("saw %d distinct check characters, want 31", len(seen))
	}
	if _, ok := socialCodeCheckChar("1234"); ok {
		t.Error("short body accepted")
	}
	if _, ok := socialCodeCheckChar("9135010000000000I"); ok {
		t.Error("body with I accepted")
	}
}

func TestValidatePassword(t *testing.T) {
	runCases(t, ValidatePassword, []validatorCase{
		{"8 bytes", "abcdefgh", ""},
		{"with spaces", "correct horse battery staple", ""},
		{"chinese 3 chars is 9 bytes", "口令字", ""},
		{"symbols", `p@ss"w,o'rd\`, ""},
		{"1024 bytes", strings.Repeat("a", 1024), ""},
		{"RTL override is printable-ish", "abcdefgh\u202e", ""},
		{"empty", "", "shorter than 8 bytes"},
		{"7 bytes", "abcdefg", "shorter than 8 bytes"},
		{"2 chinese chars is 6 bytes", "口令", "shorter than 8 bytes"},
		{"1025 bytes", strings.Repeat("a", 1025), "longer than 1024 bytes"},
		{"10 KB", tenKB, "longer than 1024 bytes"},
		{"NUL", "abcdefgh\x00", "control character"},
		{"tab", "abcd\tefgh", "control character"},
		{"newline", "abcdefgh\n", "control character"},
		{"escape", "abcdefgh\x1b", "control character"},
		{"C1", "abcdefgh\u0080", "control character"},
		{"invalid UTF-8", "abcdefgh\xff", "not valid UTF-8"},
		{"GBK bytes", "\xbf\xda\xc1\xee\xd7\xd6\xbf\xda", "not valid UTF-8"},
	})
}

// TestPasswordNotInError checks that no error message repeats the password.
func TestPasswordNotInError(t *testing.T) {
	for _, pw := range []string{"pw123", "secret\x00pw", "secret\xffpw", strings.Repeat("s", 2000)} {
		err := ValidatePassword(pw)
		if err == nil {
			t.Fatalf("%q accepted", pw)
		}
		if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "pw123") || strings.Contains(err.Error(), "sss") {
			t.Errorf("error %q repeats the password", err)
		}
	}
}
