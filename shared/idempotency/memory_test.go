package idempotency_test

import (
	"testing"

	"github.com/cloudcall/cloudcall/shared/idempotency"
	"github.com/cloudcall/cloudcall/shared/idempotency/recordstest"
)

func TestMemoryConformance(t *testing.T) {
	recordstest.Run(t, idempotency.NewMemory(nil), recordstest.Options{PurgeCounts: true})
}
