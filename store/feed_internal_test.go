package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestSavepointRetryNotifies: in a batch retried with savepoints, an op
// that numbers a change and then fails loses its NOTIFY with its
// savepoint; a later op of the same batch that numbers a change which
// commits must send the notification again (other nodes would otherwise
// learn it only from their poll).
func TestSavepointRetryNotifies(t *testing.T) {
	dsn := os.Getenv("ZBCA_TEST_PG_DSN")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx := context.Background()
	admin, err := sql.Open("pgx", dsn)
	if err == nil {
		err = admin.PingContext(ctx)
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL: %v", err)
		}
		t.Skipf("PostgreSQL not reachable: %v", err)
	}
	defer admin.Close()
	var b [6]byte
	rand.Read(b[:])
	schema := "zbca_test_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatal(err)
	}
	defer admin.ExecContext(context.Background(), `DROP SCHEMA `+schema+` CASCADE`)
	sep := "?"
	for i := range len(dsn) {
		if dsn[i] == '?' {
			sep = "&"
		}
	}
	dsn += sep + "search_path=" + schema
	s, err := Open(ctx, Options{Driver: "postgres", DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "LISTEN "+pgChannelFeed); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	var seqA, seqB int64
	mk := func(fn func(ctx context.Context, w *wtx) error) *op {
		return &op{fn: fn, ctx: ctx, done: make(chan error, 1)}
	}
	opA := mk(func(ctx context.Context, w *wtx) error {
		var err error
		if seqA, err = w.recordChange(ctx, "aa01"); err != nil {
			return err
		}
		return boom // a failure after the numbering (an audit write, the superseding)
	})
	opB := mk(func(ctx context.Context, w *wtx) error {
		var err error
		seqB, err = w.recordChange(ctx, "bb02")
		return err
	})
	s.commit([]*op{opA, opB}) // what the writer does with two queued ops
	if err := <-opA.done; !errors.Is(err, boom) {
		t.Fatalf("opA: %v", err)
	}
	if err := <-opB.done; err != nil {
		t.Fatalf("opB: %v", err)
	}
	if head, _ := s.FeedHead(ctx); seqA != 1 || seqB != 1 || head != 1 {
		t.Fatalf("numbers: A %d, B %d, head %d; want the rolled-back number handed out again", seqA, seqB, head)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for {
		n, err := conn.WaitForNotification(wctx)
		if err != nil {
			t.Fatalf("change %d committed, but no %s notification within 2 s: %v", seqB, pgChannelFeed, err)
		}
		if n.Payload == schema {
			return
		}
	}
}
