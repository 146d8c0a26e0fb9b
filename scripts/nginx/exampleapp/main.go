// Command exampleapp is a tiny submission site behind nginx
// (scripts/nginx/zbca-verify.conf): nginx has checked the client
// certificate with zbca's verification API and passes the verified
// enterprise in X-ZBCA-* headers, which this app trusts because it listens
// on loopback and only nginx can reach it.
//
//	go run ./scripts/nginx/exampleapp -listen 127.0.0.1:8000
//
// It logs one line per request on standard output
// ("report enterprise=acme result=valid days_left=1093"), which the
// integration test reads.
package main

import (
	"flag"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8000", "address to listen on (loopback: only nginx may reach it)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stdout, nil))
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// Set by nginx from zbca's answer; a client's own X-ZBCA-*
		// headers are replaced by nginx's proxy_set_header.
		user := header(r, "X-ZBCA-Enterprise")
		name := header(r, "X-ZBCA-Enterprise-Name")
		result := r.Header.Get("X-ZBCA-Result")
		days := r.Header.Get("X-ZBCA-Days-Left")
		if user == "" || (result != "valid" && result != "expiring") {
			// nginx lets no other request through; refuse anyway.
			http.Error(w, "no verified enterprise", http.StatusForbidden)
			return
		}
		log.Info("report", "enterprise", user, "name", name, "result", result, "days_left", days, "path", r.URL.Path)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><meta charset=utf-8><title>数据报送</title>\n<p>已登录 / logged in: %s (%s)</p>\n",
			html.EscapeString(name), html.EscapeString(user))
		if result == "expiring" {
			fmt.Fprintf(w, "<p>您的证书即将到期（还剩 %s 天），请重新申请证书 / Your certificate expires in %s days: apply for a new one.</p>\n",
				html.EscapeString(days), html.EscapeString(days))
		}
	})
	log.Info("listening", "addr", *listen)
	srv := &http.Server{Addr: *listen, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		log.Error("serving", "err", err)
		os.Exit(1)
	}
}

// header reads a percent-encoded X-ZBCA-* header (UTF-8 names).
func header(r *http.Request, name string) string {
	v, err := url.PathUnescape(r.Header.Get(name))
	if err != nil {
		return ""
	}
	return v
}
