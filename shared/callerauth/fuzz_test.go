package callerauth

import "testing"

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
