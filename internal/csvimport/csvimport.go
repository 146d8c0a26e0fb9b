// Package csvimport reads the CSV file of enterprise accounts that an
// operator exports from the reporting system.
//
// The first line names the columns, in any order and any letter case:
//
//	username,name,enterprise_id,password_hash
//	username,name,enterprise_id,password
//
// Exactly one of password (plaintext, to be hashed by the caller) and
// password_hash (argon2id PHC string or bcrypt) must be present;
// enterprise_id may be left out. The file must be UTF-8; a leading byte order
// mark is skipped.
//
// Reader streams: memory per row is the username and its line number, kept
// to report duplicates. Typical use:
//
//	r, err := csvimport.NewReader(f)
//	if err != nil {
//		return err // no usable header
//	}
//	for {
//		row, err := r.Next()
//		if err == io.EOF {
//			break
//		}
//		var rowErr *csvimport.RowError
//		if errors.As(err, &rowErr) {
//			report(rowErr) // skip the row, keep reading
//			continue
//		}
//		if err != nil {
//			return err // I/O error: stop
//		}
//		add(row)
//	}
package csvimport

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/zbca/zbca/internal/account"
	"github.com/zbca/zbca/internal/password"
	"github.com/zbca/zbca/internal/zerr"
)

// Row is one account that passed every check.
type Row struct {
	Line         int    // line of the file where the row starts, counting from 1
	Username     string // account.ValidateUsername
	Name         string // account.ValidateName
	Code         string // enterprise ID, account.ValidateCode; "" if absent
	Password     string // plaintext; set only if the file has a password column
	PasswordHash string // password.CheckHash; set only if the file has a password_hash column
}

// RowError reports a row that was skipped. Reading can go on after it.
type RowError struct {
	Line     int    // line of the file where the row starts
	Username string // the row's username if it is valid, else ""; safe to print
	Err      error  // of kind zerr.BadRequest
}

func (e *RowError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

func (e *RowError) Unwrap() error { return e.Err }

// ErrNotUTF8 is the RowError.Err of a row that is not valid UTF-8. A file
// saved by Excel as plain "CSV" in China is GBK, and every row of it fails
// this way: a caller may stop at the first one.
var ErrNotUTF8 = zerr.New(zerr.BadRequest, "not valid UTF-8: save the file as CSV UTF-8")

// Column names, as written in the header in lower case.
const (
	colUsername = iota
	colName
	colCode
	colPassword
	colHash
	numCols
)

var colNames = [numCols]string{"username", "name", "enterprise_id", "password", "password_hash"}

// maxHash bounds a password_hash field before it is parsed. Real argon2id
// and bcrypt strings are under 256 characters.
const maxHash = 512

var bom = []byte("\xef\xbb\xbf")

// Reader reads rows from an operator's CSV file. It is not safe for
// concurrent use.
type Reader struct {
	cr     *csv.Reader
	col    [numCols]int // field index of each column, -1 if absent
	fields int          // fields per row, from the header
	hashed bool         // password_hash column rather than password
	seen   map[string]int
	last   int   // start line of the last record or CSV error
	end    int   // last line of the last record
	err    error // sticky: io.EOF or a fatal error
}

// NewReader reads and checks the header of the CSV file in r. Its errors
// name the problem: an empty file, an unknown, repeated or missing column.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if b, err := br.Peek(len(bom)); bytes.Equal(b, bom) {
		_, _ = br.Discard(len(bom))
	} else if err != nil && err != io.EOF {
		return nil, fmt.Errorf("reading CSV header: %w", err)
	}
	cr := csv.NewReader(br) // reuses br: it is a *bufio.Reader large enough
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	cr.LazyQuotes = false

	header, err := cr.Read()
	var pe *csv.ParseError
	switch {
	case err == io.EOF:
		return nil, zerr.New(zerr.BadRequest, "the file is empty: the first line must name the columns, such as %s", strings.Join(colNames[:], ","))
	case errors.As(err, &pe):
		return nil, zerr.New(zerr.BadRequest, "line %d: header: %v", pe.StartLine, describeParseError(pe))
	case err != nil:
		return nil, fmt.Errorf("reading CSV header: %w", err)
	}
	line, _ := cr.FieldPos(0)

	rd := &Reader{cr: cr, fields: len(header), seen: make(map[string]int), last: line, end: line}
	for i := range rd.col {
		rd.col[i] = -1
	}
	for i, f := range header {
		if !utf8.ValidString(f) {
			return nil, zerr.New(zerr.BadRequest, "line %d: header is %v", line, ErrNotUTF8)
		}
		name := strings.ToLower(strings.TrimSpace(f))
		if strings.ContainsRune(name, '\r') {
			return nil, zerr.New(zerr.BadRequest, "line %d: header: lines end with a bare carriage return: save the file with Windows (CRLF) or Unix (LF) line ends", line)
		}
		if name == "" {
			return nil, zerr.New(zerr.BadRequest, "line %d: header: column %d has no name", line, i+1)
		}
		c := columnIndex(name)
		if c < 0 {
			return nil, zerr.New(zerr.BadRequest, "line %d: header: unknown column %q (known columns: %s)", line, name, strings.Join(colNames[:], ", "))
		}
		if rd.col[c] >= 0 {
			return nil, zerr.New(zerr.BadRequest, "line %d: header: column %q appears twice", line, name)
		}
		rd.col[c] = i
	}
	switch {
	case rd.col[colUsername] < 0:
		return nil, zerr.New(zerr.BadRequest, "line %d: header: missing column %q", line, colNames[colUsername])
	case rd.col[colName] < 0:
		return nil, zerr.New(zerr.BadRequest, "line %d: header: missing column %q", line, colNames[colName])
	case rd.col[colPassword] >= 0 && rd.col[colHash] >= 0:
		return nil, zerr.New(zerr.BadRequest, "line %d: header: columns %q and %q are both present: keep one", line, colNames[colPassword], colNames[colHash])
	case rd.col[colPassword] < 0 && rd.col[colHash] < 0:
		return nil, zerr.New(zerr.BadRequest, "line %d: header: missing column %q or %q", line, colNames[colPassword], colNames[colHash])
	}
	rd.hashed = rd.col[colHash] >= 0
	return rd, nil
}

func columnIndex(name string) int {
	for i, n := range colNames {
		if n == name {
			return i
		}
	}
	return -1
}

// Next returns the next valid row. It returns io.EOF at the end of the file,
// a *RowError for a row that is skipped (call Next again to go on), and any
// other error when reading cannot go on; after io.EOF or such an error, Next
// keeps returning it.
func (r *Reader) Next() (Row, error) {
	if r.err != nil {
		return Row{}, r.err
	}
	rec, err := r.cr.Read()
	if err != nil {
		return Row{}, r.readError(err)
	}
	line, _ := r.cr.FieldPos(0)
	r.last = line
	r.end = line
	for _, f := range rec {
		r.end += strings.Count(f, "\n")
	}
	if err := r.check(rec, line); err != nil {
		return Row{}, err
	}
	row := Row{
		Line:     line,
		Username: rec[r.col[colUsername]],
		Name:     rec[r.col[colName]],
	}
	if c := r.col[colCode]; c >= 0 {
		row.Code = rec[c]
	}
	if r.hashed {
		row.PasswordHash = rec[r.col[colHash]]
	} else {
		row.Password = rec[r.col[colPassword]]
	}
	return row, nil
}

// readError turns an error of csv.Reader.Read into io.EOF, a *RowError or a
// fatal error.
func (r *Reader) readError(err error) error {
	var pe *csv.ParseError
	switch {
	case err == io.EOF:
		r.err = io.EOF
	case errors.As(err, &pe) && pe.StartLine > r.last:
		// csv.Reader has consumed the line (or lines) of the broken
		// record; the next Read starts after it.
		r.last, r.end = pe.StartLine, pe.Line
		return &RowError{Line: pe.StartLine, Err: describeParseError(pe)}
	case errors.As(err, &pe):
		r.err = fmt.Errorf("reading CSV: cannot continue after line %d: %w", r.last, err)
	default:
		r.err = fmt.Errorf("reading CSV after line %d: %w", r.end, err)
	}
	return r.err
}

// describeParseError explains a csv.ParseError to an operator.
func describeParseError(pe *csv.ParseError) error {
	at := fmt.Sprintf("byte %d", pe.Column)
	if pe.Line != pe.StartLine {
		at = fmt.Sprintf("line %d, byte %d", pe.Line, pe.Column)
	}
	switch {
	case errors.Is(pe.Err, csv.ErrBareQuote):
		return zerr.New(zerr.BadRequest, "%v at %s: put the field in double quotes and double each quote inside it", pe.Err, at)
	case errors.Is(pe.Err, csv.ErrQuote) && pe.Line > pe.StartLine:
		return zerr.New(zerr.BadRequest, "%v: lines %d-%d were read as one record and skipped: check for a quoted field that is not closed", pe.Err, pe.StartLine, pe.Line)
	case errors.Is(pe.Err, csv.ErrQuote):
		return zerr.New(zerr.BadRequest, "%v at %s: double each quote inside a quoted field", pe.Err, at)
	default:
		return zerr.New(zerr.BadRequest, "%v at %s", pe.Err, at)
	}
}

// check validates a record that starts on line and records its username.
func (r *Reader) check(rec []string, line int) error {
	for _, f := range rec {
		if !utf8.ValidString(f) {
			return &RowError{Line: line, Err: ErrNotUTF8}
		}
	}
	// A valid row never contains a line break: it would fail the checks
	// below. Say why, since the usual cause is a quote left open.
	if r.end > line {
		return &RowError{Line: line, Err: zerr.New(zerr.BadRequest,
			"a quoted field contains a line break, so lines %d-%d were read as one record and skipped: check for a missing closing quote", line, r.end)}
	}
	if len(rec) != r.fields {
		hint := "the row is truncated"
		if len(rec) > r.fields {
			hint = "put fields that contain commas in double quotes"
			for _, f := range rec {
				if strings.HasPrefix(f, "$argon2") {
					hint = "an argon2id hash contains commas: put it in double quotes"
					break
				}
			}
		}
		return &RowError{Line: line, Err: zerr.New(zerr.BadRequest, "has %d fields, want %d: %s", len(rec), r.fields, hint)}
	}
	username := rec[r.col[colUsername]]
	if err := account.ValidateUsername(username); err != nil {
		return &RowError{Line: line, Err: err}
	}
	if prev, ok := r.seen[username]; ok {
		return &RowError{Line: line, Username: username, Err: zerr.New(zerr.BadRequest, "username %q is a duplicate of line %d", username, prev)}
	}
	// Remember the username even if the rest of the row is bad, so that all
	// its repeats are reported. Clone it: rec's fields share one string per
	// record, which would keep the whole row (and its hash) in memory.
	r.seen[strings.Clone(username)] = line

	if err := account.ValidateName(rec[r.col[colName]]); err != nil {
		return &RowError{Line: line, Username: username, Err: err}
	}
	if c := r.col[colCode]; c >= 0 {
		if err := account.ValidateCode(rec[c]); err != nil {
			return &RowError{Line: line, Username: username, Err: err}
		}
	}
	var err error
	if r.hashed {
		err = checkHash(rec[r.col[colHash]])
	} else {
		err = checkPassword(rec[r.col[colPassword]])
	}
	if err != nil {
		return &RowError{Line: line, Username: username, Err: err}
	}
	return nil
}

func checkHash(h string) error {
	if h == "" {
		return zerr.New(zerr.BadRequest, "password_hash is empty")
	}
	if len(h) > maxHash {
		return zerr.New(zerr.BadRequest, "password_hash is longer than %d characters", maxHash)
	}
	for i := 0; i < len(h); i++ {
		if h[i] <= ' ' || h[i] > '~' {
			return zerr.New(zerr.BadRequest, "password_hash contains %q: a hash is printable ASCII without spaces", h[i])
		}
	}
	if err := password.CheckHash(h); err != nil {
		return zerr.Wrap(zerr.BadRequest, err, "password_hash")
	}
	return nil
}

// hashPrefixes start the hash formats that password.CheckHash knows, and
// its near misses.
var hashPrefixes = []string{"$argon2", "$2a$", "$2b$", "$2y$"}

func checkPassword(pw string) error {
	if pw == "" {
		return zerr.New(zerr.BadRequest, "password is empty")
	}
	if err := account.ValidatePassword(pw); err != nil {
		return err
	}
	for _, p := range hashPrefixes {
		if strings.HasPrefix(pw, p) {
			return zerr.New(zerr.BadRequest, "password looks like a password hash: if the column holds hashes, name it %q", colNames[colHash])
		}
	}
	return nil
}
