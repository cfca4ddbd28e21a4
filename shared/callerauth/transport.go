package callerauth

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Transport signs every request it sends: wrap it around http.DefaultTransport
// in the backend that calls the bundle's HTTP triggers.
//
//	client := &http.Client{Transport: &callerauth.Transport{KeyID: "backend", Secret: secret}}
type Transport struct {
	KeyID, Secret string
	Base          http.RoundTripper // http.DefaultTransport when nil
	Now           func() time.Time
}

// RoundTrip signs a copy of req and sends it. A query the canonical form
// cannot represent (';', a bad % escape) is an error: nothing is sent.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	out := req.Clone(req.Context())
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	auth, err := Sign(t.KeyID, t.Secret, req.Method, req.URL.EscapedPath(), req.URL.RawQuery, now().Unix(), NewNonce(), body)
	if err != nil {
		return nil, fmt.Errorf("callerauth: not sending %s %s: %w", req.Method, req.URL.Path, err)
	}
	out.Header.Set("Authorization", auth)
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(out)
}

// NewNonce is 32 random hex digits.
func NewNonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
