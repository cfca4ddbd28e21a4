package callerauth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/callerauth"
)

// vectorFile is testdata/canonical_query_vectors.json (its "about" says how
// to read it; the Node client runs the same file).
type vectorFile struct {
	KeyID   string   `json:"keyId"`
	Secret  string   `json:"secret"`
	Vectors []vector `json:"vectors"`
}

type vector struct {
	Name      string            `json:"name"`
	Method    string            `json:"method"`
	Path      string            `json:"path"`
	Query     string            `json:"query"`
	Body      string            `json:"body"`
	Headers   map[string]string `json:"headers"`
	Timestamp int64             `json:"timestamp"`
	Nonce     string            `json:"nonce"`
	Expect    struct {
		CanonicalQuery string `json:"canonicalQuery"`
		StringToSign   string `json:"stringToSign"`
		Signature      string `json:"signature"`
		Authorization  string `json:"authorization"`
		Refused        bool   `json:"refused"`
	} `json:"expect"`
}

func loadVectors(t *testing.T) vectorFile {
	t.Helper()
	b, err := os.ReadFile("testdata/canonical_query_vectors.json")
	require.NoError(t, err)
	var f vectorFile
	require.NoError(t, json.Unmarshal(b, &f))
	require.GreaterOrEqual(t, len(f.Vectors), 20)
	return f
}

// recorder is a RoundTripper that keeps what the transport would send.
type recorder struct{ got *http.Request }

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.got = req
	return &http.Response{StatusCode: 200, Body: http.NoBody, Request: req}, nil
}

// The Go signer, the Go transport and the verifier against every vector.
func TestVectorsGo(t *testing.T) {
	f := loadVectors(t)
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			q, qErr := callerauth.CanonicalQuery(v.Query)
			sts, stsErr := callerauth.StringToSign(v.Method, v.Path, v.Query, v.Timestamp, v.Nonce, []byte(v.Body))
			auth, hErr := callerauth.Sign(f.KeyID, f.Secret, v.Method, v.Path, v.Query, v.Timestamp, v.Nonce, []byte(v.Body))

			rec := &recorder{}
			tr := &callerauth.Transport{KeyID: f.KeyID, Secret: f.Secret, Base: rec, Now: func() time.Time { return time.Unix(v.Timestamp, 0) }}
			path := v.Path
			if path == "" {
				path = "/"
			}
			req, err := http.NewRequest(strings.ToUpper(v.Method), "http://fn.invalid"+path, strings.NewReader(v.Body))
			require.NoError(t, err)
			req.URL.RawQuery = v.Query
			for k, val := range v.Headers {
				req.Header.Set(k, val)
			}
			_, trErr := tr.RoundTrip(req)

			verifier := callerauth.NewVerifier(map[string]string{f.KeyID: f.Secret}, callerauth.NewNonces(callerauth.NoncesOptions{}), func() time.Time { return time.Unix(v.Timestamp, 0) })
			sent := v.Expect.Authorization
			if v.Expect.Refused {
				// What a signer that dropped the bad part would send.
				sent, err = callerauth.Sign(f.KeyID, f.Secret, v.Method, v.Path, "", v.Timestamp, v.Nonce, []byte(v.Body))
				require.NoError(t, err)
			}
			vErr := verifier.Verify(context.Background(), callerauth.Request{Method: strings.ToUpper(v.Method), Path: path, RawQuery: v.Query, Authorization: sent, Body: []byte(v.Body)})

			if v.Expect.Refused {
				require.ErrorIs(t, qErr, callerauth.ErrQuery)
				require.ErrorIs(t, stsErr, callerauth.ErrQuery)
				require.ErrorIs(t, hErr, callerauth.ErrQuery)
				require.Empty(t, callerauth.Header(f.KeyID, f.Secret, v.Method, v.Path, v.Query, v.Timestamp, v.Nonce, []byte(v.Body)))
				require.ErrorIs(t, trErr, callerauth.ErrQuery)
				require.Nil(t, rec.got, "nothing sent")
				var r *callerauth.Refusal
				require.ErrorAs(t, vErr, &r)
				require.Contains(t, r.Reason, "query string cannot be canonicalized")
				return
			}
			require.NoError(t, qErr)
			require.Equal(t, v.Expect.CanonicalQuery, q)
			require.NoError(t, stsErr)
			require.Equal(t, v.Expect.StringToSign, sts)
			require.Equal(t, v.Expect.Signature, callerauth.Signature(f.Secret, sts))
			require.NoError(t, hErr)
			require.Equal(t, v.Expect.Authorization, auth)
			require.NoError(t, trErr)
			got, err := callerauth.Parse(rec.got.Header.Get("Authorization"))
			require.NoError(t, err)
			want, err := callerauth.Sign(f.KeyID, f.Secret, v.Method, v.Path, v.Query, v.Timestamp, got.Nonce, []byte(v.Body))
			require.NoError(t, err)
			require.Equal(t, want, rec.got.Header.Get("Authorization"), "the transport signs the same string")
			require.NoError(t, vErr, "the verifier accepts the vector's Authorization")
		})
	}
}

// The README's Node snippet (testdata/sign.mjs) against every vector.
func TestVectorsNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node is not installed (CI=true requires it: the Node snippet must run the vectors)")
		}
		t.Skip("node is not installed: the Node snippet does not run the vectors on this machine")
	}
	f := loadVectors(t)
	script := `import { readFileSync } from 'node:fs';
import { cloudcallAuthorization } from ` + jsString(mustAbs(t, "testdata/sign.mjs")) + `;
const doc = JSON.parse(readFileSync(` + jsString(mustAbs(t, "testdata/canonical_query_vectors.json")) + `, 'utf8'));
const out = doc.vectors.map((v) => {
  try { return { authorization: cloudcallAuthorization({ keyId: doc.keyId, secret: doc.secret, ...v }) }; }
  catch (e) { return { refused: true, error: String(e.message) }; }
});
process.stdout.write(JSON.stringify(out));`
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "vectors.mjs"), []byte(script), 0o600))
	raw, err := exec.Command(node, filepath.Join(dir, "vectors.mjs")).Output()
	require.NoError(t, err)
	var got []struct {
		Authorization string `json:"authorization"`
		Refused       bool   `json:"refused"`
		Error         string `json:"error"`
	}
	require.NoError(t, json.Unmarshal(raw, &got))
	require.Len(t, got, len(f.Vectors))
	for i, v := range f.Vectors {
		if v.Expect.Refused {
			require.True(t, got[i].Refused, "%s: node signed %q", v.Name, v.Query)
			continue
		}
		require.False(t, got[i].Refused, "%s: %s", v.Name, got[i].Error)
		require.Equal(t, v.Expect.Authorization, got[i].Authorization, v.Name)
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
