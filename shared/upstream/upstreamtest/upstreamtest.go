// Package upstreamtest has test helpers for vendor clients: a vendor address
// that answers some paths with a redirect to another server.
package upstreamtest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// Redirector is a vendor's address that answers 307 for paths under Prefix,
// pointing at Elsewhere (which serves the same vendor), and serves the rest.
type Redirector struct {
	URL        string       // the vendor address a client is configured with
	Redirected atomic.Int32 // requests answered with the redirect
	Elsewhere  atomic.Int32 // requests that reached the redirect's target
}

// NewRedirector serves vendor behind a front door that redirects every path
// under prefix; both servers close when t ends.
func NewRedirector(t *testing.T, vendor http.Handler, prefix string) *Redirector {
	t.Helper()
	r := &Redirector{}
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.Elsewhere.Add(1)
		vendor.ServeHTTP(w, req)
	}))
	t.Cleanup(target.Close)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.HasPrefix(req.URL.Path, prefix) {
			r.Redirected.Add(1)
			http.Redirect(w, req, target.URL+req.URL.RequestURI(), http.StatusTemporaryRedirect)
			return
		}
		vendor.ServeHTTP(w, req)
	}))
	t.Cleanup(front.Close)
	r.URL = front.URL
	return r
}
