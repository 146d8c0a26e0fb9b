package csvimport

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/zbca/zbca/internal/account"
	"github.com/zbca/zbca/internal/password"
	"github.com/zbca/zbca/internal/zerr"
)

// Hashes used in the test files: {B} and {A} in a test input. An argon2id
// PHC string contains commas (m=64,t=1,p=1), so it is quoted as a CSV
// writer would quote it.
var (
	bcryptHash = mustBcrypt()
	argonHash  = mustArgon()
	expand     = strings.NewReplacer("{B}", bcryptHash, "{A}", `"`+argonHash+`"`).Replace
)

func mustBcrypt() string {
	h, err := bcrypt.GenerateFromPassword([]byte("legacy-口令"), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return string(h)
}

func mustArgon() string {
	h, err := password.Hash("s3cret-口令", password.Params{MemoryKiB: 64, Time: 1, Threads: 1})
	if err != nil {
		panic(err)
	}
	return h
}

// event is what one call of Next gave: a row (err == "") or a row error.
type event struct {
	line int
	user string // Row.Username or RowError.Username
	err  string // substring of the RowError's message
}

func (e event) String() string {
	if e.err == "" {
		return fmt.Sprintf("row line %d %q", e.line, e.user)
	}
	return fmt.Sprintf("error line %d %q: %s", e.line, e.user, e.err)
}

// readAll reads in to the end and returns the events, the rows, and a
// fatal error if there was one.
func readAll(t testing.TB, r *Reader) ([]event, []Row, error) {
	t.Helper()
	var evs []event
	var rows []Row
	for range 1000 {
		row, err := r.Next()
		if err == io.EOF {
			return evs, rows, nil
		}
		var re *RowError
		if errors.As(err, &re) {
			evs = append(evs, event{line: re.Line, user: re.Username, err: re.Error()})
			continue
		}
		if err != nil {
			return evs, rows, err
		}
		evs = append(evs, event{line: row.Line, user: row.Username})
		rows = append(rows, row)
	}
	t.Fatal("Next did not reach the end after 1000 calls")
	return nil, nil, nil
}

// checkEvents compares events; a wanted error is a substring of the got one.
func checkEvents(t *testing.T, got, want []event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d:\n got %v\nwant %v", len(got), len(want), got, want)
	}
	for i, g := range got {
		w := want[i]
		if g.line != w.line || g.user != w.user || (w.err == "") != (g.err == "") || !strings.Contains(g.err, w.err) {
			t.Errorf("event %d:\n got %v\nwant %v", i, g, w)
		}
	}
}

func mustReader(t *testing.T, in string) *Reader {
	t.Helper()
	r, err := NewReader(strings.NewReader(in))
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	return r
}

func TestGoodFiles(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Row
	}{{
		name: "hashes",
		in: expand("username,name,enterprise_id,password_hash\n" +
			"acme,Acme Corp,91350100M000100Y43,{B}\n" +
			"某某科技,\"福州某某科技有限公司\",,{A}\n" +
			"a.b_c-d@e,\"Acme, \"\"Quoted\"\" Inc\",ABC123,{A}\n"),
		want: []Row{
			{Line: 2, Username: "acme", Name: "Acme Corp", Code: "91350100M000100Y43", PasswordHash: bcryptHash},
			{Line: 3, Username: "某某科技", Name: "福州某某科技有限公司", PasswordHash: argonHash},
			{Line: 4, Username: "a.b_c-d@e", Name: `Acme, "Quoted" Inc`, Code: "ABC123", PasswordHash: argonHash},
		},
	}, {
		name: "passwords",
		in: "username,name,enterprise_id,password\n" +
			"acme,Acme Corp,91350100M000100Y43,correct horse\n" +
			"某某科技,福州某某科技有限公司,,口令口令口令\n" +
			"q,Q,,\"with,comma\"\"quote\"\n",
		want: []Row{
			{Line: 2, Username: "acme", Name: "Acme Corp", Code: "91350100M000100Y43", Password: "correct horse"},
			{Line: 3, Username: "某某科技", Name: "福州某某科技有限公司", Password: "口令口令口令"},
			{Line: 4, Username: "q", Name: "Q", Password: `with,comma"quote`},
		},
	}, {
		name: "BOM",
		in:   "\ufeffusername,name,password\nacme,Acme Corp,password1\n",
		want: []Row{{Line: 2, Username: "acme", Name: "Acme Corp", Password: "password1"}},
	}, {
		name: "reordered columns, case and spaces in header, no enterprise_id",
		in:   expand(" Password_Hash ,USERNAME,  Name\n{B},acme,Acme Corp\n"),
		want: []Row{{Line: 2, Username: "acme", Name: "Acme Corp", PasswordHash: bcryptHash}},
	}, {
		name: "enterprise_id first",
		in:   "enterprise_id,password,name,username\n914403001922038216,password1,Huawei,hw\n",
		want: []Row{{Line: 2, Username: "hw", Name: "Huawei", Code: "914403001922038216", Password: "password1"}},
	}, {
		name: "CRLF line ends and no final newline",
		in:   "username,name,password\r\na,A,password1\r\nb,B,password2",
		want: []Row{
			{Line: 2, Username: "a", Name: "A", Password: "password1"},
			{Line: 3, Username: "b", Name: "B", Password: "password2"},
		},
	}, {
		name: "blank lines are skipped but counted",
		in:   "\nusername,name,password\n\na,A,password1\n\n\nb,B,password2\n\n",
		want: []Row{
			{Line: 4, Username: "a", Name: "A", Password: "password1"},
			{Line: 7, Username: "b", Name: "B", Password: "password2"},
		},
	}, {
		name: "header only",
		in:   "username,name,enterprise_id,password_hash\n",
	}, {
		name: "header only, no newline",
		in:   "username,name,password",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			evs, rows, err := readAll(t, mustReader(t, tc.in))
			if err != nil {
				t.Fatalf("fatal error: %v", err)
			}
			if len(rows) != len(evs) {
				t.Fatalf("row errors in a good file: %v", evs)
			}
			if len(rows) != len(tc.want) {
				t.Fatalf("got %d rows %+v, want %d", len(rows), rows, len(tc.want))
			}
			for i := range rows {
				if rows[i] != tc.want[i] {
					t.Errorf("row %d:\n got %+v\nwant %+v", i, rows[i], tc.want[i])
				}
			}
		})
	}
}

func TestHeaderErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty file", "", "the file is empty"},
		{"only BOM", "\ufeff", "the file is empty"},
		{"only blank lines", "\n\n\r\n", "the file is empty"},
		{"unknown column", "username,name,password,email\n", `line 1: header: unknown column "email"`},
		{"unknown column after blank line", "\nusername,name,phone,password\n", `line 2: header: unknown column "phone"`},
		{"both password columns", "username,name,password,password_hash\n", `columns "password" and "password_hash" are both present`},
		{"missing username", "name,enterprise_id,password_hash\n", `missing column "username"`},
		{"missing name", "username,password_hash\n", `missing column "name"`},
		{"missing password", "username,name,enterprise_id\n", `missing column "password" or "password_hash"`},
		{"duplicate column", "username,name,Username,password\n", `column "username" appears twice`},
		{"empty column name", "username,name,password,\n", "column 4 has no name"},
		{"GBK header", "username,\xc3\xfb\xb3\xc6,password\n", "line 1: header is not valid UTF-8: save the file as CSV UTF-8"},
		{"bare quote in header", "user\"name,name,password\n", `line 1: header: bare " in non-quoted-field at byte 5`},
		{"unclosed quote in header", "\"username,name,password\nacme,Acme,password1\n", "line 1: header: extraneous or missing \" in quoted-field: lines 1-2"},
		{"bare CR line ends", "username,name,password\racme,Acme,password1\r", "bare carriage return"},
		{"second BOM", "\ufeff\ufeffusername,name,password\n", `unknown column "\ufeffusername"`},
		{"hostile column name", "username,name,password,\u202e\x1b[2J\n", `unknown column "\u202e\x1b[2j"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewReader(strings.NewReader(tc.in))
			if err == nil {
				t.Fatalf("NewReader succeeded (%+v), want error containing %q", r, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want it to contain %q", err, tc.want)
			}
			if !errors.Is(err, zerr.BadRequest) {
				t.Errorf("error %q is not zerr.BadRequest", err)
			}
		})
	}
}

func TestRowErrors(t *testing.T) {
	const hdr = "username,name,enterprise_id,password_hash\n"
	tests := []struct {
		name string
		in   string
		want []event
	}{{
		name: "truncated rows",
		in:   hdr + "a,A,,{B}\nb,B,\nc,C,,{A}\nd\ne,E,,{B}\n",
		want: []event{
			{line: 2, user: "a"},
			{line: 3, err: "line 3: has 3 fields, want 4: the row is truncated"},
			{line: 4, user: "c"},
			{line: 5, err: "line 5: has 1 fields, want 4"},
			{line: 6, user: "e"},
		},
	}, {
		name: "unquoted comma",
		in:   hdr + "a,Acme, Inc,,{B}\nb,B,,{B}\n",
		want: []event{
			{line: 2, err: "line 2: has 5 fields, want 4: put fields that contain commas in double quotes"},
			{line: 3, user: "b"},
		},
	}, {
		name: "unquoted argon2id hash",
		in:   hdr + "a,A,," + argonHash + "\nb,B,,{A}\n",
		want: []event{
			{line: 2, err: "line 2: has 6 fields, want 4: an argon2id hash contains commas: put it in double quotes"},
			{line: 3, user: "b"},
		},
	}, {
		name: "duplicates",
		in:   hdr + "a,A,,{B}\nb,B,,{B}\na,A2,,{A}\nc,C,,{B}\nb,B,,{B}\na,A3,,{B}\n",
		want: []event{
			{line: 2, user: "a"},
			{line: 3, user: "b"},
			{line: 4, user: "a", err: `line 4: username "a" is a duplicate of line 2`},
			{line: 5, user: "c"},
			{line: 6, user: "b", err: `line 6: username "b" is a duplicate of line 3`},
			{line: 7, user: "a", err: `line 7: username "a" is a duplicate of line 2`},
		},
	}, {
		name: "duplicate of a bad row",
		in:   hdr + "a,A,,nohash\nb,B,,{B}\na,A,,{B}\n",
		want: []event{
			{line: 2, user: "a", err: "line 2: password_hash: unsupported hash format"},
			{line: 3, user: "b"},
			{line: 4, user: "a", err: "duplicate of line 2"},
		},
	}, {
		name: "usernames differing in case are not duplicates",
		in:   hdr + "acme,A,,{B}\nAcme,A,,{B}\n",
		want: []event{{line: 2, user: "acme"}, {line: 3, user: "Acme"}},
	}, {
		name: "bad hashes",
		in: hdr + "a,A,,{B}\n" +
			"b,B,,$2a$04$short\n" +
			"c,C,,\"$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\"\n" +
			"d,D,,plaintext\n" +
			"e,E,,\n" +
			"f,F,,$2a$04$ abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz\n" +
			"g,G,,\"$argon2id$v=16$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\"\n" +
			"h,H,,$2a$31$" + strings.Repeat("a", 53) + "\n" +
			"i,I,,$argon2id$" + strings.Repeat("a", 600) + "\n" +
			"z,Z,,{A}\n",
		want: []event{
			{line: 2, user: "a"},
			{line: 3, user: "b", err: "line 3: password_hash: bcrypt hash must be 60 characters"},
			{line: 4, user: "c", err: "line 4: password_hash: argon2 memory 4194304 KiB out of range"},
			{line: 5, user: "d", err: "line 5: password_hash: unsupported hash format"},
			{line: 6, user: "e", err: "line 6: password_hash is empty"},
			{line: 7, user: "f", err: `line 7: password_hash contains ' '`},
			{line: 8, user: "g", err: `line 8: password_hash: unsupported argon2 version "v=16"`},
			{line: 9, user: "h", err: "line 9: password_hash: bcrypt cost 31 too high"},
			{line: 10, user: "i", err: "line 10: password_hash is longer than 512 characters"},
			{line: 11, user: "z"},
		},
	}, {
		name: "bad usernames",
		in: hdr + "a,A,,{B}\n" +
			",B,,{B}\n" +
			"acme corp,C,,{B}\n" +
			".acme,D,,{B}\n" +
			"\"acme\u202egpj\",E,,{B}\n" +
			strings.Repeat("企", 65) + ",F,,{B}\n" +
			"z,Z,,{B}\n",
		want: []event{
			{line: 2, user: "a"},
			{line: 3, err: "line 3: username is empty"},
			{line: 4, err: "line 4: username contains a space"},
			{line: 5, err: "line 5: username must not start with '.'"},
			{line: 6, err: `line 6: username contains '\u202e' (U+202E)`},
			{line: 7, err: "line 7: username is longer than 64 characters"},
			{line: 8, user: "z"},
		},
	}, {
		name: "bad names and codes",
		in: hdr + "a,,,{B}\n" +
			"b, Acme,,{B}\n" +
			"c,Acme\u202eCorp,,{B}\n" +
			"d,D,911100001000000000,{B}\n" +
			"e,E,91350100m000100y43,{B}\n" +
			"f,F,91350100M000100Y43,{B}\n",
		want: []event{
			{line: 2, user: "a", err: "line 2: name is empty"},
			{line: 3, user: "b", err: "line 3: name has leading or trailing space"},
			{line: 4, user: "c", err: "line 4: name contains invisible formatting character U+202E"},
			{line: 5, user: "d", err: "line 5: enterprise ID of 18 characters is a unified social credit code, and its check character does not match"},
			{line: 6, user: "e", err: "line 6: enterprise ID contains lower-case letters"},
			{line: 7, user: "f"},
		},
	}, {
		name: "GBK bytes",
		in: hdr + "a,A,,{B}\n" +
			"b,\xc4\xb3\xc4\xb3\xbf\xc6\xbc\xbc,,{B}\n" +
			"\xb8\xa3\xd6\xdd,C,,{B}\n" + // 福州
			"\xc4\xb3\xc4\xb3,C,,{B}\n" + // 某某, which happens to be valid UTF-8 (ĳĳ)
			"d,D,,{B}\n",
		want: []event{
			{line: 2, user: "a"},
			{line: 3, err: "line 3: not valid UTF-8: save the file as CSV UTF-8"},
			{line: 4, err: "line 4: not valid UTF-8: save the file as CSV UTF-8"},
			{line: 5, user: "ĳĳ"},
			{line: 6, user: "d"},
		},
	}, {
		name: "bare quotes",
		in: hdr + "a,A,,{B}\n" +
			"b,Acme \"Best\" Corp,,{B}\n" +
			"c,C,,{B}\n" +
			"d,\"Acme\" Corp,,{B}\n" +
			"e,E,,{B}\n",
		want: []event{
			{line: 2, user: "a"},
			{line: 3, err: `line 3: bare " in non-quoted-field at byte 8: put the field in double quotes`},
			{line: 4, user: "c"},
			{line: 5, err: `line 5: extraneous or missing " in quoted-field at byte 8: double each quote inside a quoted field`},
			{line: 6, user: "e"},
		},
	}, {
		name: "quote left open in the middle",
		in: hdr + "a,A,,{B}\n" +
			"b,\"Acme Corp,,{B}\n" +
			"c,C,,{B}\n" +
			"d,\"D\",,{B}\n" +
			"e,E,,{B}\n",
		// The open quote of line 3 is closed by the first quote of line
		// 5, and the following 'D' breaks the record.
		want: []event{
			{line: 2, user: "a"},
			{line: 3, err: `line 3: extraneous or missing " in quoted-field: lines 3-5 were read as one record and skipped`},
			{line: 6, user: "e"},
		},
	}, {
		name: "quote left open, closed by a quote before a comma",
		in: hdr + "a,A,,{B}\n" +
			"b,\"Acme Corp,,{B}\n" +
			"c,C,,{B}\n" +
			"d\",D,,{B}\n" +
			"e,E,,{B}\n",
		want: []event{
			{line: 2, user: "a"},
			{line: 3, err: "line 3: a quoted field contains a line break, so lines 3-5 were read as one record and skipped"},
			{line: 6, user: "e"},
		},
	}, {
		name: "quote left open to the end",
		in:   hdr + "a,A,,{B}\nb,\"Acme Corp,,{B}\nc,C,,{B}\nd,D,,{B}\n",
		want: []event{
			{line: 2, user: "a"},
			{line: 3, err: `line 3: extraneous or missing " in quoted-field: lines 3-5 were read as one record and skipped`},
		},
	}, {
		name: "line break in a quoted name",
		in:   hdr + "a,\"Acme\nCorp\",,{B}\nb,B,,{B}\n",
		want: []event{
			{line: 2, err: "line 2: a quoted field contains a line break, so lines 2-3 were read as one record"},
			{line: 4, user: "b"},
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			evs, _, err := readAll(t, mustReader(t, expand(tc.in)))
			if err != nil {
				t.Fatalf("fatal error: %v", err)
			}
			checkEvents(t, evs, tc.want)
		})
	}
}

func TestPasswordColumn(t *testing.T) {
	in := expand("username,name,password\n" +
		"a,A,password1\n" +
		"b,B,\n" +
		"c,C,sh0rt!!\n" +
		"d,D,{B}\n" +
		"e,E,$argon2id$not-really\n" +
		"f,F,pass\x00word\n" +
		"g,G,\"pass\tword\"\n" +
		"h,H,  spaces  \n")
	evs, rows, err := readAll(t, mustReader(t, in))
	if err != nil {
		t.Fatal(err)
	}
	checkEvents(t, evs, []event{
		{line: 2, user: "a"},
		{line: 3, user: "b", err: "line 3: password is empty"},
		{line: 4, user: "c", err: "line 4: password is shorter than 8 bytes"},
		{line: 5, user: "d", err: `line 5: password looks like a password hash: if the column holds hashes, name it "password_hash"`},
		{line: 6, user: "e", err: "line 6: password looks like a password hash"},
		{line: 7, user: "f", err: "line 7: password contains a control character"},
		{line: 8, user: "g", err: "line 8: password contains a control character"},
		{line: 9, user: "h"},
	})
	if len(rows) != 2 || rows[1].Password != "  spaces  " {
		t.Errorf("rows %+v: want the password kept as written", rows)
	}
	for _, e := range evs {
		for _, pw := range []string{"sh0rt", "pass\x00word", "pass\tword", bcryptHash[:10], "not-really"} {
			if strings.Contains(e.err, pw) {
				t.Errorf("error %q repeats a password", e.err)
			}
		}
	}
}

func TestRowErrorValue(t *testing.T) {
	r := mustReader(t, "username,name,password\nacme,\xff,password1\nacme,A,password1\nacme,A,password1\n")
	_, err := r.Next()
	var re *RowError
	if !errors.As(err, &re) {
		t.Fatalf("got %v, want *RowError", err)
	}
	if re.Line != 2 || re.Username != "" || !errors.Is(err, ErrNotUTF8) || !errors.Is(err, zerr.BadRequest) {
		t.Errorf("got %+v", re)
	}
	if got, want := err.Error(), "line 2: not valid UTF-8: save the file as CSV UTF-8"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	_, err = r.Next()
	if !errors.As(err, &re) || re.Line != 4 || re.Username != "acme" || !errors.Is(err, zerr.BadRequest) {
		t.Errorf("got %#v", err)
	}
	if got, want := err.Error(), `line 4: username "acme" is a duplicate of line 3`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestReadFailure(t *testing.T) {
	boom := errors.New("disk on fire")
	in := io.MultiReader(strings.NewReader("username,name,password\na,A,password1\nb,B,password2\n"), iotest.ErrReader(boom))
	r, err := NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	evs, _, err := readAll(t, r)
	if len(evs) != 2 {
		t.Errorf("got %v, want two rows", evs)
	}
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "after line 3") {
		t.Fatalf("got %v, want the read error naming line 3", err)
	}
	var re *RowError
	if errors.As(err, &re) {
		t.Error("a read error must not be a *RowError")
	}
	if _, err2 := r.Next(); err2 != err {
		t.Errorf("second Next: got %v, want the same fatal error", err2)
	}
	if _, err := NewReader(iotest.ErrReader(boom)); !errors.Is(err, boom) {
		t.Errorf("NewReader on a failing reader: got %v", err)
	}
	r = mustReader(t, "username,name,password\n")
	for range 3 {
		if _, err := r.Next(); err != io.EOF {
			t.Fatalf("got %v, want io.EOF again", err)
		}
	}
}

// TestSmallReads checks that a reader returning one byte at a time, with a
// BOM split across reads, gives the same result.
func TestSmallReads(t *testing.T) {
	in := expand("\ufeffusername,name,password_hash\na,A,{B}\nb,\"B\nB\",{A}\nc,C,{A}\n")
	r, err := NewReader(iotest.OneByteReader(strings.NewReader(in)))
	if err != nil {
		t.Fatal(err)
	}
	evs, _, err := readAll(t, r)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 || evs[0].line != 2 || evs[1].line != 3 || evs[1].err == "" || evs[2].line != 5 || evs[2].err != "" {
		t.Errorf("got %v", evs)
	}
}

// gen produces a CSV file of n valid rows with pre-hashed passwords,
// alternating bcrypt and argon2id, without holding it in memory.
type gen struct {
	n, i int
	buf  []byte
}

func (g *gen) Read(p []byte) (int, error) {
	for len(g.buf) < len(p) && g.i <= g.n {
		if g.i == 0 {
			g.buf = append(g.buf, "username,name,enterprise_id,password_hash\n"...)
		} else {
			h := bcryptHash
			if g.i%2 == 0 {
				h = `"` + argonHash + `"`
			}
			g.buf = fmt.Appendf(g.buf, "user%07d,福州某某科技有限公司%d,91350100M000100Y43,%s\n", g.i, g.i, h)
		}
		g.i++
	}
	if len(g.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, g.buf)
	g.buf = g.buf[:copy(g.buf, g.buf[n:])]
	return n, nil
}

// TestMillionRows reads one million rows and reports the time and the
// memory kept for duplicate detection. Run it on one core with
// GOMAXPROCS=1 go test -run MillionRows -v.
func TestMillionRows(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	const n = 1_000_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	r, err := NewReader(&gen{n: n})
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for {
		row, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d rows: %v", count, err)
		}
		count++
		if row.Line != count+1 {
			t.Fatalf("row %d on line %d", count, row.Line)
		}
	}
	elapsed := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(r)
	if count != n {
		t.Fatalf("read %d rows, want %d", count, n)
	}
	t.Logf("%d rows in %v (%.0f rows/s), %d MiB live heap held by the reader",
		n, elapsed.Round(time.Millisecond), n/elapsed.Seconds(), (int64(after.HeapAlloc)-int64(before.HeapAlloc))>>20)
	if elapsed > 30*time.Second {
		t.Errorf("took %v, want well under 30s", elapsed)
	}
}

func BenchmarkReader(b *testing.B) {
	const n = 100_000
	data, err := io.ReadAll(&gen{n: n})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

func FuzzReader(f *testing.F) {
	seeds := []string{
		"",
		"\ufeff",
		"username,name,enterprise_id,password_hash\n",
		expand("username,name,enterprise_id,password_hash\nacme,Acme Corp,91350100M000100Y43,{B}\n某某,某某科技,,{A}\n"),
		expand("\ufeffPassword_Hash, username ,NAME\r\n{A},a,A\r\n{B},a,B\r\n"),
		"username,name,password\na,A,password1\nb,\"B\nB\",password2\nc,C\n\"d,D,password3\n",
		"username,name,password\na,A\"B,password1\nb,\"B\"x,password2\n",
		"username,name,password\n\xc4\xb3\xc4\xb3,\xbf\xc6,password1\n",
		"username,name,enterprise_id,password\nx,X,914403001922038216,\u202e\u202e\u202e\u202e\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			if r != nil {
				t.Fatal("NewReader returned a reader and an error")
			}
			return
		}
		prev := 0
		users := map[string]bool{}
		// Each call of Next consumes at least one line.
		for range bytes.Count(data, []byte("\n")) + 2 {
			row, err := r.Next()
			if err == io.EOF {
				return
			}
			var re *RowError
			if errors.As(err, &re) {
				if re.Line <= prev {
					t.Fatalf("row error on line %d after line %d", re.Line, prev)
				}
				prev = re.Line
				if re.Err == nil || !errors.Is(err, zerr.BadRequest) {
					t.Fatalf("row error %v is not zerr.BadRequest", err)
				}
				if re.Username != "" && account.ValidateUsername(re.Username) != nil {
					t.Fatalf("RowError.Username %q is not valid", re.Username)
				}
				continue
			}
			if err != nil {
				t.Fatalf("fatal error from an in-memory file: %v", err)
			}
			if row.Line <= prev {
				t.Fatalf("row on line %d after line %d", row.Line, prev)
			}
			prev = row.Line
			for _, err := range []error{account.ValidateUsername(row.Username), account.ValidateName(row.Name), account.ValidateCode(row.Code)} {
				if err != nil {
					t.Fatalf("row %+v: %v", row, err)
				}
			}
			switch {
			case row.Password != "" && row.PasswordHash == "":
				if err := account.ValidatePassword(row.Password); err != nil {
					t.Fatalf("row %+v: %v", row, err)
				}
			case row.Password == "" && row.PasswordHash != "":
				if err := password.CheckHash(row.PasswordHash); err != nil {
					t.Fatalf("row %+v: %v", row, err)
				}
			default:
				t.Fatalf("row %+v: want exactly one of Password and PasswordHash", row)
			}
			if users[row.Username] {
				t.Fatalf("username %q returned twice", row.Username)
			}
			users[row.Username] = true
		}
		t.Fatal("Next did not reach the end")
	})
}
