package callerauth

import (
	"errors"
	"net/url"
	"testing"
)

// FuzzParse: a parsed header always satisfies the scheme's field rules.
func FuzzParse(f *testing.F) {
	f.Add("CLOUDCALL-HMAC-SHA256 KeyId=a,Timestamp=1700000000,Nonce=0123456789abcdef,Signature=" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	f.Add("CLOUDCALL-HMAC-SHA256 KeyId=,Timestamp=-1")
	f.Add("Bearer x")
	f.Fuzz(func(t *testing.T, h string) {
		a, err := Parse(h)
		if err != nil {
			return
		}
		if !keyIDPattern().MatchString(a.KeyID) || !noncePattern().MatchString(a.Nonce) || !sigPattern().MatchString(a.Signature) || a.Timestamp <= 0 {
			t.Fatalf("Parse(%q) accepted %+v", h, a)
		}
	})
}

// FuzzCanonicalQuery: never panics; what it accepts is canonical (a second
// pass changes nothing) and plain ASCII a standard parser reads.
func FuzzCanonicalQuery(f *testing.F) {
	for _, s := range []string{"", "b=2&a=1", "a=1;b=2", "a=%zz", "q=hello+world", "k=%F0%9F%98%80&k=%EF%BF%BD", "&&=&", "a=%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		out, err := CanonicalQuery(raw)
		if err != nil {
			if !errors.Is(err, ErrQuery) {
				t.Fatalf("CanonicalQuery(%q): %v is not ErrQuery", raw, err)
			}
			return
		}
		again, err := CanonicalQuery(out)
		if err != nil || again != out {
			t.Fatalf("CanonicalQuery(%q) = %q, and again %q, %v", raw, out, again, err)
		}
		if _, err := url.ParseQuery(out); err != nil {
			t.Fatalf("CanonicalQuery(%q) = %q, which net/url refuses: %v", raw, out, err)
		}
	})
}
