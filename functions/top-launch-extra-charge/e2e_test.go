package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
	"github.com/cloudcall/cloudcall/shared/sandbox/topsbx"
)

var binary string

func TestMain(m *testing.M) {
	os.Exit(emulator.WithBinaries([]string{"./functions/top-launch-extra-charge"}, func(b map[string]string) int {
		binary = b["top-launch-extra-charge"]
		return m.Run()
	}))
}

// The real binary under a host time zone far from GMT+8 still sends a
// GMT+8 timestamp, which the sandbox checks against its 10-minute window.
func TestTimestampIsGMT8WhateverTheHostZone(t *testing.T) {
	for _, tz := range []string{"UTC", "America/Los_Angeles"} {
		t.Run(tz, func(t *testing.T) {
			sbx := topsbx.New(topsbx.Options{})
			srv := httptest.NewServer(sbx.Handler())
			defer srv.Close()
			env := sbx.Env(srv.URL)
			env["TZ"] = tz
			mr := miniredis.RunT(t) // the records store, as under `cloudcall local`
			env["CLOUDCALL_IDEMPOTENCY_STORE"] = "redis://" + mr.Addr() + "/0"
			env["CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE"] = "assume"
			inst, err := emulator.StartInstance(emulator.InstanceConfig{Binary: binary, Platform: runtimeapi.Lambda, Env: env})
			require.NoError(t, err)
			defer inst.Stop()
			order := "BFC-TZ-" + tz[:3]
			payload := fmt.Sprintf(`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":%q,"price":100,"type":1},"idempotencyKey":"tz"}`, order)
			res, err := inst.Invoke(context.Background(), runtimeapi.Invocation{Payload: []byte(payload), Timeout: 10 * time.Second})
			require.NoError(t, err)
			var m map[string]any
			require.NoError(t, json.Unmarshal(res.Body, &m))
			require.Equal(t, 0.0, m["errCode"], m)
			require.Len(t, sbx.Charges(order), 1)
		})
	}
}
