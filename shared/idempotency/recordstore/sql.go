//go:build !cloudcall_nosql

package recordstore

import (
	"log/slog"

	"github.com/cloudcall/cloudcall/shared/idempotency"
	"github.com/cloudcall/cloudcall/shared/idempotency/sqlrecords"
)

// HasSQL says whether this build links the PostgreSQL and MySQL clients.
const HasSQL = true

func openSQL(url string, log *slog.Logger, afterLoss string) (idempotency.Records, error) {
	return sqlrecords.Open(sqlrecords.Options{URL: url, Log: log, AfterLoss: afterLoss})
}
