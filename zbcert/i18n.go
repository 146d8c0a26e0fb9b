package zbcert

import (
	"fmt"
	"runtime"
	"strings"
)

// Lang is the language of what zbcert prints: Chinese or English.
type Lang string

const (
	Zh Lang = "zh"
	En Lang = "en"
)

// ParseLang accepts "zh", "en" and locale names such as "zh_CN.UTF-8".
func ParseLang(s string) (Lang, error) {
	l := strings.ToLower(strings.TrimSpace(s))
	switch {
	case strings.HasPrefix(l, "zh"):
		return Zh, nil
	case strings.HasPrefix(l, "en"):
		return En, nil
	}
	return "", fmt.Errorf("unknown language %q (zh or en)", s)
}

// DetectLang picks the language from the locale variables, in the order
// POSIX gives them precedence (LC_ALL, LC_MESSAGES, LANG). Without any of
// them it is Chinese on Windows (whose users do not set LANG) and English
// elsewhere. getenv is os.Getenv outside tests.
func DetectLang(getenv func(string) string) Lang {
	for _, k := range []string{"LC_ALL", "LC_MESSAGES", "LANG"} {
		v := getenv(k)
		if v == "" {
			continue
		}
		if strings.HasPrefix(strings.ToLower(v), "zh") {
			return Zh
		}
		return En
	}
	if runtime.GOOS == "windows" {
		return Zh
	}
	return En
}

// T returns the message for key in l, formatted with args. A key without
// a translation is returned as it is, so a missing text shows, not panics.
func (l Lang) T(key string, args ...any) string {
	m, ok := messages[key]
	if !ok {
		return fmt.Sprint(append([]any{key, " "}, args...)...)
	}
	s := m[0]
	if l == En {
		s = m[1]
	}
	if len(args) == 0 {
		return s
	}
	return fmt.Sprintf(s, args...)
}
