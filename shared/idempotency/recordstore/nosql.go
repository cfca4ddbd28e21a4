//go:build cloudcall_nosql

package recordstore

import (
	"log/slog"

	"github.com/cloudcall/cloudcall/shared/idempotency"
)

// HasSQL says whether this build links the PostgreSQL and MySQL clients.
// This one does not: it was packaged for a Redis records store, and the two
// clients cost the charge a quarter of its cold start (docs/performance.md).
const HasSQL = false

func openSQL(string, *slog.Logger, string) (idempotency.Records, error) {
	return nil, ErrNoSQLClient
}
