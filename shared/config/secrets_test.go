package config

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSecretsLongestFirstAndStable(t *testing.T) {
	e := FromMap(map[string]string{"A": "short", "B": "a-much-longer-secret", "B_SAME": "a-much-longer-secret"})
	require.Empty(t, e.Secrets())
	_, err := e.Secret("A")
	require.NoError(t, err)
	_, err = e.Secret("B")
	require.NoError(t, err)
	_, err = e.Secret("B_SAME") // the same value again: listed once
	require.NoError(t, err)
	e.Remember("mid-size")
	e.Remember("zzzzz") // as long as "short": ties ordered by value
	e.Remember("")      // ignored
	require.Equal(t, []string{"a-much-longer-secret", "mid-size", "short", "zzzzz"}, e.Secrets())
}

// Every log line reads the list: reading it must not allocate or sort.
func TestSecretsDoesNotAllocate(t *testing.T) {
	e := FromMap(nil)
	for i := 0; i < 20; i++ {
		e.Remember(fmt.Sprintf("secret-%02d", i))
	}
	var n int
	allocs := testing.AllocsPerRun(100, func() { n += len(e.Secrets()) })
	require.Zero(t, allocs)
	require.Equal(t, 101*20, n)
}

// A list handed out earlier is not changed by a later Remember (a log line
// being redacted keeps a consistent list).
func TestSecretsSnapshotIsImmutable(t *testing.T) {
	e := FromMap(nil)
	e.Remember("first-secret")
	before := e.Secrets()
	e.Remember("second-secret-longer")
	require.Equal(t, []string{"first-secret"}, before)
	require.Equal(t, []string{"second-secret-longer", "first-secret"}, e.Secrets())
}

func TestSecretsConcurrent(t *testing.T) {
	e := FromMap(nil)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				e.Remember(fmt.Sprintf("token-%d-%d", g, i))
				_ = e.Secrets()
			}
		}()
	}
	wg.Wait()
	require.Len(t, e.Secrets(), 400)
}

// A secret is masked as JSON writes it too: a token holding '&' appeared in
// an answer as "SeCrEtAmp\u0026tail" and in clear (outside tester).
func TestASecretIsKnownAsJSONSpellsIt(t *testing.T) {
	e := FromMap(nil)
	e.Remember(`SeCrEtAmp&tail<"x">`)
	got := e.Secrets()
	require.Contains(t, got, `SeCrEtAmp&tail<"x">`)
	require.Contains(t, got, `SeCrEtAmp\u0026tail\u003c\"x\"\u003e`)
	require.Contains(t, got, `SeCrEtAmp&tail<\"x\">`)
	require.Len(t, got, 3)
	e.Remember("plain-token-123")
	require.Len(t, e.Secrets(), 4, "a secret JSON writes as it is has one form")
}

// An STS token or a base64 secret is matched as URLs spell it: a vendor's
// error quoting the request it refused showed "SecurityToken=STS.abc%2Bdef
// %2F123%3D" in clear, and then lower-case hex, '/' left as it is and a
// double encoding (outside testers).
func TestASecretIsKnownAsURLsSpellIt(t *testing.T) {
	e := FromMap(nil)
	e.Remember("STS.abc+def/123= x~z")
	e.Remember("plain-token-123")
	enc := e.EncodedSecrets()
	require.Len(t, enc, 1, "a secret URLs write as it is needs no pattern")
	for _, form := range []string{
		"STS.abc%2Bdef%2F123%3D+x~z",           // a query (form) escaping
		"STS.abc+def%2F123=%20x~z",             // a path escaping
		"STS.abc%2Bdef%2F123%3D%20x~z",         // Alibaba Cloud's POP encoding
		"STS.abc%2bdef%2f123%3d+x~z",           // lower-case hex (.NET)
		"STS.abc%2Bdef/123%3D%20x~z",           // '/' kept (Python's quote)
		"STS.abc%252Bdef%252F123%253D%2520x~z", // a URL inside a URL
		"STS.abc def/123= x~z",                 // form-decoded: '+' read as a space
		"STS.abc%20def%2F123%3D%20x~z",         // and encoded again
	} {
		require.True(t, enc[0].MatchString("token="+form+"&x=1"), form)
	}
	require.False(t, enc[0].MatchString("STS.abc%2Bdef%2F124%3D+x~z"), "another token")
}
