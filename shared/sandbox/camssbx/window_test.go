package camssbx

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// GET /__sandbox/cams/window shows each AccessKey's flow-control window.
func TestWindowAdmin(t *testing.T) {
	s := New(Options{})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	get := func() string {
		r, err := http.Get(srv.URL + "/__sandbox/cams/window")
		require.NoError(t, err)
		defer r.Body.Close()
		var v any
		require.NoError(t, json.NewDecoder(r.Body).Decode(&v))
		b, _ := json.Marshal(v)
		return string(b)
	}
	require.JSONEq(t, `{"qps":10,"keys":[]}`, get())
	// Arrivals as the signed-request path records them: 2 long ago, 3
	// recent (stamped ahead so a slow test machine cannot age them out).
	now := time.Now()
	recent := now.Add(time.Minute)
	s.mu.Lock()
	s.arrivals[DemoAccessKeyID] = []time.Time{now.Add(-5 * time.Second), now.Add(-4 * time.Second), recent, recent, recent}
	s.maxSeen[DemoAccessKeyID] = 7
	s.mu.Unlock()
	require.JSONEq(t, `{"qps":10,"keys":[{"accessKeyId":"`+DemoAccessKeyID+`","lastSecond":3,"maxPerSecond":7}]}`, get())
	// The vendor API and the shared admin endpoints are still behind it.
	r, err := http.Get(srv.URL + "/__sandbox/calls")
	require.NoError(t, err)
	r.Body.Close()
	require.Equal(t, 200, r.StatusCode)
}
