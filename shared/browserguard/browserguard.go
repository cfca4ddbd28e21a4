// Package browserguard keeps web pages away from local endpoints that act
// without credentials: the emulator's function doors (with --upstream real
// a charge is real money) and the sandboxes' admin endpoints (faults, the
// clock, balances). A page the developer has open can send a cross-site
// request that needs no preflight (a form, a text/plain fetch, an image) or
// rebind its own DNS name to 127.0.0.1; backends, curl and the SDKs send no
// Origin or Sec-Fetch-Site and name the address they dialled.
package browserguard

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Refusal says why a request looks like a web page's, or "" when it does
// not. what names the endpoints for the message ("the emulator's doors").
func Refusal(r *http.Request, what string) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	site := r.Header.Get("Sec-Fetch-Site")
	switch {
	// An empty Host is an HTTP/1.0 client's: browsers always send one.
	case host != "" && !strings.EqualFold(host, "localhost") && net.ParseIP(host) == nil:
		return fmt.Sprintf("Host %q is a name other than localhost (a page rebinding its DNS name to this machine); call %s at its IP address or localhost", r.Host, what)
	case r.Header.Get("Origin") != "" && !sameOrigin(r.Header.Get("Origin"), r.Host):
		return fmt.Sprintf("cross-origin request from %q refused: %s act without credentials, so web pages may not call them; call from your backend or a terminal", r.Header.Get("Origin"), what)
	case site != "" && site != "same-origin" && site != "none":
		return fmt.Sprintf("cross-site request refused (Sec-Fetch-Site: %s): %s act without credentials, so web pages may not call them; call from your backend or a terminal", site, what)
	}
	return ""
}

func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, host)
}
