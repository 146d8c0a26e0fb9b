package verify

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"testing"
	"time"
)

// TestAppendJSON: the hand-written answer is what encoding/json writes.
func TestAppendJSON(t *testing.T) {
	days, neg := 42, -3
	at := time.Date(2031, 3, 1, 11, 55, 0, 0, time.UTC)
	answers := []*Answer{
		{Result: Malformed, Message: Message{"无法识别", "cannot be read"}, Detail: "not DER: <\"x\">\n\t&\u2028\xff"},
		{Result: Valid, Valid: true, Enterprise: &Enterprise{"acme", "某某科技有限公司", "91350100M000100Y43"}, Serial: "3a9f", NotBefore: at.AddDate(-3, 0, 0), NotAfter: at, DaysLeft: &days, Message: Message{"证书有效", "ok"}},
		{Result: Revoked, Enterprise: &Enterprise{"b\x01", "", ""}, ClaimedUsername: "x\\y", Serial: "1", NotAfter: at, DaysLeft: &neg, RevokedAt: at.Add(123456789), RevocationReason: "keyCompromise"},
	}
	for _, a := range answers {
		want, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.appendJSON(nil); !bytes.Equal(got, append(want, '\n')) {
			t.Errorf("appendJSON\n got %s\nwant %s", got, want)
		}
	}
}

// TestDecodeRequestFast: what the fast reader takes, it reads as
// encoding/json does; the rest it leaves to encoding/json.
func TestDecodeRequestFast(t *testing.T) {
	for _, in := range []string{
		`{"certificate":"-----BEGIN CERTIFICATE-----\nMIIB\/+==\n-----END CERTIFICATE-----\n","username":"acme"}`,
		` { "username" : "某某" , "certificate" : "a\"b\\c\tq\r\f\b" } `,
		`{"certificate":"x"}`,
		`{}`,
	} {
		cert, user, ok := decodeRequestFast([]byte(in))
		if !ok {
			t.Errorf("%s: not taken", in)
			continue
		}
		var want request
		if err := json.Unmarshal([]byte(in), &want); err != nil || string(cert) != want.Certificate || user != want.Username {
			t.Errorf("%s: %q %q, encoding/json %+v %v", in, cert, user, want, err)
		}
	}
	for _, in := range []string{
		`{"certificate":"\u0041"}`, `{"certificate":1}`, `{"certificate":"a","user":"b"}`, `{"certificate":"a","certificate":"b"}`,
		`{"certificate":"a"}x`, `{"certificate":"a",}`, `{"certificate":"a" "username":"b"}`, `{"certificate":"a\x01"}`, `{"certificate":"\xff"}`,
		`{"certificate":"a`, `[]`, ``, `{"certificate":null}`,
	} {
		if c, u, ok := decodeRequestFast([]byte(in)); ok {
			t.Errorf("%q taken: %q %q", in, c, u)
		}
	}
}

// FuzzDecodeRequest: the fast reader never disagrees with encoding/json.
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"certificate":"-----BEGIN\nx","username":"a"}`))
	f.Add([]byte(`{"username":"\t","certificate":""}`))
	// Runs longer than a word, with a quote, a backslash, a control
	// character or UTF-8 at each offset within one.
	f.Add([]byte(`{"certificate":"-----BEGIN CERTIFICATE-----\nMIIBkTCCATegAwIBAgIQ\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n-----END CERTIFICATE-----\n"}`))
	f.Add([]byte("{\"certificate\":\"0123456\x1f89abcdef\"}"))
	f.Add([]byte(`{"certificate":"01234567\"9abcdef\\0123456证书有效789"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		want, err := decodeRequest(in)
		cert, user, ok := decodeRequestFast(bytes.Clone(in))
		if !ok {
			return
		}
		if err != nil || string(cert) != want.Certificate || user != want.Username {
			t.Fatalf("%q: fast %q %q, encoding/json %+v %v", in, cert, user, want, err)
		}
	})
}

// TestSpecial8: the word test agrees with the byte test for every byte
// value at every position, over words of plain and of high bytes.
func TestSpecial8(t *testing.T) {
	plain := func(c byte) bool { return c < 0x20 || c == '"' || c == '\\' }
	for _, fill := range []byte{'A', 0x7f, 0x80, 0xff, 0x21, 0x5d} {
		for pos := 0; pos < 8; pos++ {
			for v := 0; v < 256; v++ {
				var w [8]byte
				for k := range w {
					w[k] = fill
				}
				w[pos] = byte(v)
				want := false
				for _, c := range w {
					want = want || plain(c)
				}
				if got := special8(binary.LittleEndian.Uint64(w[:])); got != want {
					t.Fatalf("%x: special8 %v, want %v", w, got, want)
				}
			}
		}
	}
}
