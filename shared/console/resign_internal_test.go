package console

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/callerauth"
	"github.com/cloudcall/cloudcall/shared/runtime"
)

// Replay of a signed HTTP trigger call sent its spent nonce again, and with
// --caller-keys every replay answered 401 "replayed nonce" (outside
// tester). It is signed again, with a fresh timestamp and nonce, by the
// same key; the body, path and query are what was sent.
func TestAReplayedSignedCallIsSignedAgain(t *testing.T) {
	keys := map[string]string{"backend": "0123456789abcdef0123456789abcdef"}
	body := `{"deliveryId":"YTO","bizId":"xyz"}`
	then := time.Unix(1_800_000_000, 0)
	auth := callerauth.Header("backend", keys["backend"], "POST", "/logistics-get-quota", "a=1", then.Unix(), "nfirst0123456789", []byte(body))
	ev, _ := json.Marshal(map[string]any{"version": "v1", "rawPath": "/logistics-get-quota", "body": body, "isBase64Encoded": false,
		"headers": map[string]string{"Authorization": auth, "Content-Type": "application/json"}, "queryParameters": map[string]string{"a": "1"},
		"requestContext": map[string]any{"requestId": "r", "timeEpoch": "1800000000000", "http": map[string]string{"method": "POST", "path": "/logistics-get-quota"}}})

	now := then.Add(10 * time.Minute) // the first signature is out of its window by now
	again := resign(ev, keys, now)
	in, _, err := runtime.Detect(again)
	require.NoError(t, err)
	require.JSONEq(t, body, string(in.Body))
	a, err := callerauth.Parse(in.Header.Get("Authorization"))
	require.NoError(t, err)
	require.NotEqual(t, "nfirst0123456789", a.Nonce)
	require.Equal(t, now.Unix(), a.Timestamp)
	v := callerauth.NewVerifier(keys, callerauth.NewNonces(callerauth.NoncesOptions{}), func() time.Time { return now })
	require.NoError(t, v.Verify(context.Background(), callerauth.Request{Authorization: in.Header.Get("Authorization"),
		Method: in.Method, Path: in.Path, RawQuery: in.RawQuery, QueryJoined: in.QueryJoined, Body: in.Body}))

	// A call whose recorded signature was not the key's (forged, or the
	// body changed after signing) is replayed as it was, and refused again:
	// the console must not sign what the function refused.
	forged := callerauth.Header("backend", "not-the-secret-0123456789abcdef", "POST", "/logistics-get-quota", "a=1", then.Unix(), "nfirst0123456789", []byte(body))
	for _, hdr := range []string{forged, "CLOUDCALL-HMAC-SHA256 KeyId=backend,Timestamp=1,Nonce=aaaaaaaaaaaaaaaa,Signature=" + strings.Repeat("0", 64)} {
		bad := []byte(strings.Replace(string(ev), auth, hdr, 1))
		require.NotEqual(t, ev, bad)
		require.Equal(t, bad, resign(bad, keys, now))
	}
	tampered := []byte(strings.Replace(string(ev), `\"bizId\":\"xyz\"`, `\"bizId\":\"abc\"`, 1))
	require.NotEqual(t, ev, tampered)
	require.Equal(t, tampered, resign(tampered, keys, now))

	// Unsigned calls, unknown keys and non-HTTP events are replayed as they were.
	require.Equal(t, ev, resign(ev, map[string]string{"other": "x"}, now))
	require.Equal(t, ev, resign(ev, nil, now))
	timer := []byte(`{"triggerTime":"2026-03-01T08:00:00Z","triggerName":"t","payload":"{}"}`)
	require.Equal(t, timer, resign(timer, keys, now))
}
