package upstream

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/cloudcall/cloudcall/shared/config"
)

// PlaintextVar lets a vendor address be plain http on a host other than this
// machine: a sandbox on another host or container. Off, such an address is
// refused at start, since the credentials would cross the network in clear
// (WeChat's app secret in the token request, an access token in every URL).
const PlaintextVar = "CLOUDCALL_ALLOW_PLAINTEXT_UPSTREAM"

// Base judges v, the vendor address setting name whose default is def,
// before any call: an absolute http(s) URL with a host, no user info and no
// query; plain http only to this machine unless PlaintextVar says
// otherwise. An outside tester's http://api.weixin.qq.com and
// http://user:pw@host were taken in silence.
func Base(env *config.Env, name, v, def string) (string, error) {
	u, err := url.Parse(v)
	shown := fmt.Sprintf("%s=%q", name, v)
	if strings.Contains(v, "@") {
		shown = name + " (not shown: an '@' may follow a password)"
	}
	switch {
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Opaque != "":
		return "", fmt.Errorf("%s: expected an address such as %s", shown, def)
	case u.User != nil:
		// Not quoted: it may hold a password.
		return "", fmt.Errorf("%s: the address carries user info (user:password@); the vendor's credentials have their own settings, so remove it", name)
	case u.RawQuery != "" || u.ForceQuery || strings.Contains(v, "#"): // "x#" has an empty Fragment: every path went to "/"
		return "", fmt.Errorf("%s: expected no query or fragment, as in %s", shown, def)
	case !validPort(u.Port()):
		return "", fmt.Errorf("%s: the port is not a number from 1 to 65535", shown)
	case u.Scheme == "http" && !local(u.Hostname()) && !env.Bool(PlaintextVar, false):
		return "", fmt.Errorf("%s: plain http to another host would send the credentials in clear: use https, or set %s=true for a sandbox on another host", shown, PlaintextVar)
	}
	return v, nil
}

// SecretURL judges v, a URL that is a secret itself (a notification
// webhook carrying its token in the path or query), as Base judges a vendor
// address but never quoting it: an http(s) URL with a host, no user info,
// plain http only to this machine unless PlaintextVar says otherwise (an
// outside tester's http:// Slack and WeCom webhooks went out in clear).
func SecretURL(env *config.Env, name, v string) error {
	u, err := url.Parse(v)
	switch {
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Opaque != "":
		return fmt.Errorf("%s: expected an https:// URL with a host; the value is a secret and is not shown", name)
	case u.User != nil:
		return fmt.Errorf("%s: the URL carries user info (user:password@), which is sent nowhere it belongs; remove it (the value is a secret and is not shown)", name)
	case u.Scheme == "http" && !local(u.Hostname()) && !env.Bool(PlaintextVar, false):
		return fmt.Errorf("%s: plain http to another host would send the URL's token in clear: use https, or set %s=true for a test receiver on another host (the value is a secret and is not shown)", name, PlaintextVar)
	}
	return nil
}

// validPort says p is empty (the scheme's) or a port number.
func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return p == "" || err == nil && n >= 1 && n <= 65535
}

// local says host is this machine: localhost, a loopback or unspecified
// address.
func local(host string) bool {
	if h := strings.TrimSuffix(host, "."); strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.IsLoopback() || ip.IsUnspecified())
}
