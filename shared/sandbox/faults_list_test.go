package sandbox

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// GET /__sandbox/faults lists what is in force, so the console can show
// its fault toggles as they are (including faults set with curl).
func TestFaultsListing(t *testing.T) {
	s := New("test")
	srv := httptest.NewServer(s.Wrap(http.NotFoundHandler()))
	defer srv.Close()
	list := func() []Fault {
		r, err := http.Get(srv.URL + "/__sandbox/faults")
		require.NoError(t, err)
		defer r.Body.Close()
		require.Equal(t, 200, r.StatusCode)
		var out struct{ Faults []Fault }
		require.NoError(t, json.NewDecoder(r.Body).Decode(&out))
		return out.Faults
	}
	require.Empty(t, list())
	r, err := http.Post(srv.URL+"/__sandbox/faults", "application/json", strings.NewReader(`{"path":"/cgi-bin/x","kind":"status","status":200,"body":"{\"errcode\":-1}"}`))
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, r.Body)
	r.Body.Close()
	s.Inject(Fault{Kind: FaultLatency, Delay: 2e9, Times: 3})
	require.Equal(t, []Fault{
		{Path: "/cgi-bin/x", Kind: FaultStatus, Status: 200, Body: `{"errcode":-1}`},
		{Kind: FaultLatency, Delay: 2e9, Times: 3},
	}, list())
	s.ClearFaults()
	require.Empty(t, list())
}
