package sqlrecords

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Only a search_path naming one schema (not "$user") is taken as is; a list
// resolves whichever of its schemas exists first, which can move.
func TestOneSchema(t *testing.T) {
	for sp, one := range map[string]bool{
		"billing": true, ` "Odd ""sch, x" `: true, `"a,b"`: true, " , a": true,
		"a,b": false, "a, public": false, `$user`: false, `"$user"`: false, `"$user", public`: false, "": false,
	} {
		require.Equal(t, one, oneSchema(sp), "%q", sp)
	}
}
