// Command fixedhttp is a plain Go HTTP server answering every request with
// the same 1,000 octets (about the size of an OCSP response with its
// responder certificate): the ceiling of net/http on this machine, measured
// in the same run as the responder.
//
//	fixedhttp 127.0.0.1:PORT
package main

import (
	"net/http"
	"os"
	"strconv"
)

func main() {
	body := make([]byte, 1000)
	http.ListenAndServe(os.Args[1], http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"application/ocsp-response"}
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
		w.Write(body)
	}))
}
