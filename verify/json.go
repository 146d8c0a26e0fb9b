package verify

import (
	"encoding/binary"
	"strconv"
	"time"
	"unicode/utf8"
)

// The verification API is the hot path of a login: its request and answer
// are read and written here by hand instead of by encoding/json, whose
// reflection, escaping and allocations took a fifth of the server's CPU in
// the benchmark's profile (docs/benchmarks.md, issue 6). Anything this
// reader does not expect falls back to encoding/json, which gives the
// caller its precise error.

// decodeRequestFast reads {"certificate": "…", "username": "…"} (either
// order, username optional, white space anywhere). It unescapes the
// strings in place, so b is changed and cert points into it. ok is false
// for anything else: other keys, other value types, duplicate keys,
// escapes it does not handle (\u), trailing data.
func decodeRequestFast(b []byte) (cert []byte, username string, ok bool) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, "", false
	}
	i = skipWS(b, i+1)
	var haveCert, haveUser bool
	for {
		if i >= len(b) {
			return nil, "", false
		}
		if b[i] == '}' {
			i++
			break
		}
		if haveCert || haveUser {
			if b[i] != ',' {
				return nil, "", false
			}
			i = skipWS(b, i+1)
		}
		key, j, ok := readString(b, i)
		if !ok {
			return nil, "", false
		}
		i = skipWS(b, j)
		if i >= len(b) || b[i] != ':' {
			return nil, "", false
		}
		val, j, ok := readString(b, skipWS(b, i+1))
		if !ok {
			return nil, "", false
		}
		i = skipWS(b, j)
		switch {
		case string(key) == "certificate" && !haveCert:
			cert, haveCert = val, true
		case string(key) == "username" && !haveUser:
			username, haveUser = string(val), true
		default:
			return nil, "", false
		}
	}
	if skipWS(b, i) != len(b) {
		return nil, "", false
	}
	if cert == nil {
		cert = []byte{}
	}
	return cert, username, true
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// readString reads the JSON string starting at b[i], unescaping it in
// place (the result is never longer than its source), and returns it and
// the index after the closing quote. Escapes: \" \\ \/ \b \f \n \r \t; not
// \u.
//
// A certificate's PEM is runs of 64 plain characters between \n escapes:
// the runs are found eight bytes at a time and moved with copy.
func readString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, i, false
	}
	i++
	start, w := i, i
	for {
		run := i
		for i+8 <= len(b) && !special8(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		for i < len(b) && b[i] >= 0x20 && b[i] != '"' && b[i] != '\\' {
			i++
		}
		w += copy(b[w:], b[run:i])
		if i >= len(b) {
			return nil, i, false
		}
		switch c := b[i]; {
		case c == '"':
			if !utf8.Valid(b[start:w]) {
				return nil, i, false
			}
			return b[start:w], i + 1, true
		case c < 0x20:
			return nil, i, false
		}
		// A backslash.
		if i+1 >= len(b) {
			return nil, i, false
		}
		switch e := b[i+1]; e {
		case '"', '\\', '/':
			b[w] = e
		case 'b':
			b[w] = '\b'
		case 'f':
			b[w] = '\f'
		case 'n':
			b[w] = '\n'
		case 'r':
			b[w] = '\r'
		case 't':
			b[w] = '\t'
		default:
			return nil, i, false
		}
		w++
		i += 2
	}
}

// special8 reports whether any of the eight bytes in x is a control
// character (< 0x20), a quote or a backslash: the "has a byte less than
// n" and "has a zero byte" tests of the bit-twiddling folklore, exact as a
// whole (a borrow can mark a wrong byte only above a byte that is itself
// a match); TestSpecial8 checks every byte at every position.
func special8(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	less := (x - 0x20*ones) &^ x & highs // some byte < 0x20
	q := x ^ '"'*ones                    // a zero byte where there was a quote
	bs := x ^ '\\'*ones
	return less|((q-ones)&^q&highs)|((bs-ones)&^bs&highs) != 0
}

// appendJSON writes the answer as encoding/json would (same keys, same
// omissions, RFC 3339 times), without reflection.
func (a *Answer) appendJSON(b []byte) []byte {
	b = append(b, `{"result":`...)
	b = appendString(b, string(a.Result))
	b = append(b, `,"valid":`...)
	b = strconv.AppendBool(b, a.Valid)
	if e := a.Enterprise; e != nil {
		b = append(b, `,"enterprise":{"username":`...)
		b = appendString(b, e.Username)
		b = append(b, `,"name":`...)
		b = appendString(b, e.Name)
		b = append(b, `,"id":`...)
		b = appendString(b, e.ID)
		b = append(b, '}')
	}
	if a.ClaimedUsername != "" {
		b = append(b, `,"claimed_username":`...)
		b = appendString(b, a.ClaimedUsername)
	}
	if a.Serial != "" {
		b = append(b, `,"serial":`...)
		b = appendString(b, a.Serial)
	}
	b = appendTime(b, `,"not_before":`, a.NotBefore)
	b = appendTime(b, `,"not_after":`, a.NotAfter)
	if a.DaysLeft != nil {
		b = append(b, `,"days_left":`...)
		b = strconv.AppendInt(b, int64(*a.DaysLeft), 10)
	}
	b = appendTime(b, `,"revoked_at":`, a.RevokedAt)
	if a.RevocationReason != "" {
		b = append(b, `,"revocation_reason":`...)
		b = appendString(b, a.RevocationReason)
	}
	b = append(b, `,"message":{"zh":`...)
	b = appendString(b, a.Message.ZH)
	b = append(b, `,"en":`...)
	b = appendString(b, a.Message.EN)
	b = append(b, '}')
	if a.Detail != "" {
		b = append(b, `,"detail":`...)
		b = appendString(b, a.Detail)
	}
	return append(b, '}', '\n')
}

func appendTime(b []byte, key string, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	b = append(b, key...)
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string: quotes, backslashes and control
// characters escaped, invalid UTF-8 replaced by U+FFFD, and U+2028/U+2029
// and <, >, & escaped as encoding/json does.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
