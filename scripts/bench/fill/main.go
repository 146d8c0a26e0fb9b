// Command fill loads benchmark data into an initialised zbca data
// directory: N enterprises, one client certificate each (through the CA's
// bulk issuance, so in the same fixed order as every issuance), and a
// fraction of them revoked through the store's transactional Revoke.
//
//	zbca --data DIR init
//	go run ./scripts/bench/fill -data DIR -n 1000000 -revoked 0.10
//
// With -revoke-rest it only revokes every client certificate still active
// (used to measure a CRL with every entry revoked).
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"flag"
	"fmt"
	"log"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/scripts/bench/internal/benchenv"
	"github.com/zbca/zbca/store"
)

// A real bcrypt hash (cost 10): the import checks the format only.
const passwordHash = "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"

// Reasons given to revoked certificates in turn: unspecified,
// keyCompromise, affiliationChanged, superseded, cessationOfOperation.
var reasons = []int{0, 1, 3, 4, 5}

const actor = "bench-fill"

func main() {
	var (
		dir        = flag.String("data", "", "initialised data directory (required)")
		configPath = flag.String("config", "", "zbca configuration file (optional; sets public_url)")
		n          = flag.Int("n", 1_000_000, "enterprises and certificates to add")
		revoked    = flag.Float64("revoked", 0.10, "fraction of the new certificates to revoke")
		batch      = flag.Int("batch", 5000, "certificates per IssueBulk call")
		importN    = flag.Int("import-batch", 10_000, "accounts per ImportEnterprises call")
		workers    = flag.Int("workers", 64, "concurrent revocations")
		seed       = flag.Uint64("seed", 1, "seed choosing which certificates are revoked")
		revokeRest = flag.Bool("revoke-rest", false, "only revoke every client certificate that is still active")
	)
	flag.Parse()
	log.SetFlags(0)
	if *dir == "" {
		log.Fatal("fill: -data is required (a directory made by `zbca --data DIR init`)")
	}
	ctx := context.Background()
	env, err := benchenv.Open(ctx, *dir, *configPath, nil)
	if err != nil {
		log.Fatalf("fill: %v", err)
	}
	defer env.Close()
	start := time.Now()
	if *revokeRest {
		serials, err := activeClientSerials(ctx, env)
		if err != nil {
			log.Fatalf("fill: %v", err)
		}
		log.Printf("revoking the %d active client certificates", len(serials))
		revokeAll(ctx, env.Store, serials, *workers)
		log.Printf("total %s", time.Since(start).Round(time.Millisecond))
		return
	}
	if cs, err := env.Store.ListCertificates(ctx, store.CertFilter{Profile: store.ProfileClient, Limit: 1}); err != nil {
		log.Fatalf("fill: %v", err)
	} else if len(cs) > 0 {
		log.Fatalf("fill: %s already holds client certificates: fill a fresh data directory", env.Config.DataDir)
	}

	t := time.Now()
	if err := importAccounts(ctx, env.Store, *n, *importN); err != nil {
		log.Fatalf("fill: %v", err)
	}
	log.Printf("accounts: %d in %s", *n, time.Since(t).Round(time.Millisecond))

	t = time.Now()
	serials, err := issue(ctx, env, *n, *batch)
	if err != nil {
		log.Fatalf("fill: %v", err)
	}
	el := time.Since(t)
	log.Printf("certificates: %d in %s (%.0f/s)", len(serials), el.Round(time.Millisecond), float64(len(serials))/el.Seconds())

	r := mrand.New(mrand.NewPCG(*seed, 0x2b3))
	r.Shuffle(len(serials), func(i, j int) { serials[i], serials[j] = serials[j], serials[i] })
	k := int(float64(len(serials))*(*revoked) + 0.5)
	revokeAll(ctx, env.Store, serials[:k], *workers)
	log.Printf("total %s for %d certificates, %d revoked", time.Since(start).Round(time.Millisecond), len(serials), k)
}

// importAccounts adds ent0000000… ent<n-1>, skipping existing usernames.
func importAccounts(ctx context.Context, st *store.SQL, n, per int) error {
	rows := make([]store.Enterprise, 0, per)
	for i := 0; i < n; i += per {
		rows = rows[:0]
		for j := i; j < min(i+per, n); j++ {
			rows = append(rows, store.Enterprise{Username: fmt.Sprintf("ent%07d", j), Name: fmt.Sprintf("Enterprise %d Ltd", j), PasswordHash: passwordHash})
		}
		ev := store.AuditEvent{Actor: actor, Action: "enterprise.import", Subject: fmt.Sprintf("bench accounts %d–%d", i, i+len(rows)-1)}
		if _, err := st.ImportEnterprises(ctx, rows, ev); err != nil {
			return fmt.Errorf("importing accounts: %w", err)
		}
	}
	return nil
}

type job struct {
	items []ca.BulkItem
}

// issue gives each of the first n accounts (in username order) one client
// certificate with a fresh P-256 key. Keys are made on every core one batch
// ahead, and two IssueBulk calls run at once, so that one's commits overlap
// the other's signatures.
func issue(ctx context.Context, env *benchenv.Env, n, per int) ([]string, error) {
	jobs := make(chan job, 2)
	var listErr error
	go func() {
		defer close(jobs)
		after := ""
		for done := 0; done < n; {
			es, err := env.Store.ListEnterprises(ctx, after, min(per, n-done))
			if err != nil {
				listErr = err
				return
			}
			if len(es) == 0 {
				return
			}
			after = es[len(es)-1].Username
			done += len(es)
			items := make([]ca.BulkItem, len(es))
			var wg sync.WaitGroup
			var next atomic.Int64
			var keyErr atomic.Pointer[error]
			for range runtime.GOMAXPROCS(0) {
				wg.Go(func() {
					for i := int(next.Add(1) - 1); i < len(es); i = int(next.Add(1) - 1) {
						k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
						if err != nil {
							keyErr.Store(&err)
							return
						}
						items[i] = ca.BulkItem{Enterprise: &es[i], PublicKey: k.Public()}
					}
				})
			}
			wg.Wait()
			if p := keyErr.Load(); p != nil {
				listErr = *p
				return
			}
			jobs <- job{items}
		}
	}()

	var mu sync.Mutex
	serials := make([]string, 0, n)
	var firstErr error
	var issued atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for j := range jobs {
				recs, err := env.CA.IssueBulk(ctx, env.Store, j.items, actor)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				for _, r := range recs {
					serials = append(serials, r.Serial)
				}
				mu.Unlock()
				if err != nil {
					continue
				}
				total := issued.Add(int64(len(recs)))
				if total%100_000 < int64(len(recs)) || total == int64(n) {
					el := time.Since(start)
					log.Printf("  issued %7d  %6.1fs  %.0f/s", total, el.Seconds(), float64(total)/el.Seconds())
				}
			}
		})
	}
	wg.Wait()
	if listErr != nil {
		return serials, listErr
	}
	return serials, firstErr
}

// revokeAll revokes serials with workers concurrent store.Revoke calls,
// each one transaction with its audit event (grouped into shared commits
// by the store's writer).
func revokeAll(ctx context.Context, st *store.SQL, serials []string, workers int) {
	start := time.Now()
	var next, done, failed atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(serials) {
					return
				}
				_, err := st.Revoke(ctx, store.RevokeRequest{Serial: serials[i], Reason: reasons[i%len(reasons)], Actor: actor})
				if err != nil {
					if failed.Add(1) <= 5 {
						log.Printf("  revoking %s: %v", serials[i], err)
					}
					continue
				}
				if d := done.Add(1); d%100_000 == 0 {
					el := time.Since(start)
					log.Printf("  revoked %7d  %6.1fs  %.0f/s", d, el.Seconds(), float64(d)/el.Seconds())
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	log.Printf("revoked: %d in %s (%.0f/s), %d failed", done.Load(), el.Round(time.Millisecond), float64(done.Load())/el.Seconds(), failed.Load())
	if failed.Load() > 0 {
		os.Exit(1)
	}
}

// activeClientSerials lists the client certificates not revoked yet.
func activeClientSerials(ctx context.Context, env *benchenv.Env) ([]string, error) {
	skip, err := env.ServiceSerials(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	_, err = env.Store.LoadStatuses(ctx, time.Time{}, func(c store.CertStatus) error {
		if c.Status == store.CertActive && !skip[c.Serial] {
			out = append(out, c.Serial)
		}
		return nil
	})
	return out, err
}
