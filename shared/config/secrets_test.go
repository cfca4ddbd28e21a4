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
	require.Contains(t, got, `SeCrEtAmp%26tail%3C%22x%22%3E`, "as a query spells it")
	require.Contains(t, got, `SeCrEtAmp&tail%3C%22x%22%3E`, "as a path spells it")
	require.Len(t, got, 5)
	e.Remember("plain-token-123")
	require.Len(t, e.Secrets(), 6, "a secret JSON and URLs write as it is has one form")
}

// An STS token or a base64 secret is masked as a URL spells it: a vendor's
// error quoting the request it refused showed "SecurityToken=STS.abc%2Bdef
// %2F123%3D" in clear (an outside tester).
func TestASecretIsKnownAsURLsSpellIt(t *testing.T) {
	e := FromMap(nil)
	e.Remember("STS.abc+def/123= x*y~z")
	got := e.Secrets()
	require.Contains(t, got, "STS.abc%2Bdef%2F123%3D+x%2Ay~z", "form/query escaping")
	require.Contains(t, got, "STS.abc+def%2F123=%20x%2Ay~z", "path escaping")
	require.Contains(t, got, "STS.abc%2Bdef%2F123%3D%20x%2Ay~z", "Alibaba Cloud's POP encoding")
}
