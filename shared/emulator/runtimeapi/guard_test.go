package runtimeapi_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
)

// Only the function's process may call its runtime API: a web page that
// found the port took a caller's charge from the queue, read its event
// (with a fresh signature) and answered it with a forged success (outside
// tester, by cross-site requests and by DNS rebinding).
func TestTheRuntimeAPIRefusesWebPages(t *testing.T) {
	s, err := runtimeapi.New(runtimeapi.FC)
	require.NoError(t, err)
	defer s.Close()
	base := "http://" + s.Addr() + "/2020-11-11/runtime/invocation/"
	got := make(chan runtimeapi.Result, 1)
	go func() {
		r, err := s.Invoke(context.Background(), runtimeapi.Invocation{Payload: []byte(`{"charge":1}`), Timeout: 5 * time.Second})
		require.NoError(t, err)
		got <- r
	}()
	for _, page := range []map[string]string{
		{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
		{"Host": "rebind.evil.example"},
	} {
		req, _ := http.NewRequest("GET", base+"next", nil)
		for k, v := range page {
			if k == "Host" {
				req.Host = v
				continue
			}
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusForbidden, resp.StatusCode, "%v", page)
		require.NotContains(t, string(b), "charge", "the event is not handed out")
	}
	// The function's own poll gets the invocation and answers it.
	resp, err := http.Get(base + "next")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.JSONEq(t, `{"charge":1}`, string(b))
	id := resp.Header.Get("x-fc-request-id")
	require.NotEmpty(t, id)
	resp, err = http.Post(base+id+"/response", "application/json", strings.NewReader(`{"ok":true}`))
	require.NoError(t, err)
	resp.Body.Close()
	r := <-got
	require.JSONEq(t, `{"ok":true}`, string(r.Body))
}

// Request ids are random version-4 UUIDs, as Lambda's are (a caller that
// checks the form refused the emulator's).
func TestRequestIDsAreVersion4UUIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := runtimeapi.NewRequestID()
		require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, id)
		require.False(t, seen[id])
		seen[id] = true
	}
}
