// Command crlpub times the publication of the issuing CA's full CRL from a
// filled data directory, as the server does it (revocation.Publisher:
// reserve the CRL number, stream the revoked rows from SQLite into the
// streaming DER writer, sign, store), and reports its memory:
//
//	go run ./scripts/bench/crlpub -data DIR [-count 3]
//
// Run it while no server uses DIR (it stores the CRLs it makes, with new
// CRL numbers, like a server would).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/zbca/zbca/revocation"
	"github.com/zbca/zbca/scripts/bench/internal/benchenv"
)

func main() {
	var (
		dir     = flag.String("data", "", "filled data directory (required)")
		count   = flag.Int("count", 3, "publications")
		cpuProf = flag.String("cpuprofile", "", "write a CPU profile of the publications")
		memProf = flag.String("memprofile", "", "write an allocation profile after the publications")
	)
	flag.Parse()
	log.SetFlags(0)
	ctx := context.Background()
	env, err := benchenv.Open(ctx, *dir, "", nil)
	if err != nil {
		log.Fatalf("crlpub: %v", err)
	}
	defer env.Close()
	iss := env.CA.IssuingCAs()
	pub, err := revocation.NewPublisher(revocation.PublisherOptions{Store: env.Store, Issuers: iss, Root: env.CA.RootCRLIssuer()})
	if err != nil {
		log.Fatal(err)
	}
	runtime.GC()
	fmt.Printf("before: RSS %s, heap in use %s\n", procStatus("VmRSS"), mib(heapInuse()))
	if *cpuProf != "" {
		f, err := os.Create(*cpuProf)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	for i := range *count {
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		p, err := pub.Publish(ctx, iss[0].Name)
		if err != nil {
			log.Fatal(err)
		}
		took := time.Since(start)
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		fmt.Printf("run %d: CRL %s #%d, %d entries, %.1f MB DER, took %s, allocated %s in %d allocations, peak RSS so far %s\n",
			i+1, p.Name, p.Number, p.Entries, float64(len(p.DER))/1e6, took.Round(time.Millisecond),
			mib(after.TotalAlloc-before.TotalAlloc), after.Mallocs-before.Mallocs, procStatus("VmHWM"))
	}
	if *memProf != "" {
		f, err := os.Create(*memProf)
		if err != nil {
			log.Fatal(err)
		}
		pprof.Lookup("allocs").WriteTo(f, 0)
		f.Close()
	}
}

func heapInuse() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func mib(b uint64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// procStatus returns a field of /proc/self/status, such as VmHWM (peak
// resident memory).
func procStatus(field string) string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
