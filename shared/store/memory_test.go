package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/store"
	"github.com/cloudcall/cloudcall/shared/store/storetest"
)

func TestMemory(t *testing.T) {
	storetest.Run(t, store.NewMemory(store.MemoryOptions{}), "t:")
}

func TestMemoryExpiry(t *testing.T) {
	now := time.Unix(1000, 0)
	m := store.NewMemory(store.MemoryOptions{Now: func() time.Time { return now }})
	ctx := context.Background()
	require.NoError(t, m.Set(ctx, "k", []byte("v"), time.Second))
	now = now.Add(999 * time.Millisecond)
	_, err := m.Get(ctx, "k")
	require.NoError(t, err)
	now = now.Add(time.Millisecond)
	_, err = m.Get(ctx, "k")
	require.ErrorIs(t, err, store.ErrNotFound)
}
