package alicloud

import (
	"encoding/json"
	"testing"
)

// FuzzCAMSData: any Data object is passed through with lowerCamel keys; a
// POP error body always maps to an envelope error.
func FuzzCAMSData(f *testing.F) {
	f.Add([]byte(`{"Id":"1","AuthInternationalRateEligibility":{"a":[1]},"IsOnBizApp":"N"}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[1]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := camelKeys(b)
		if err == nil && m == nil {
			t.Fatal("nil map without error")
		}
		var pe Error
		if json.Unmarshal(b, &pe) == nil {
			pe.Status = 400
			if e := pe.Envelope("cams"); e == nil || e.Upstream == nil {
				t.Fatal("no envelope for a POP error")
			}
		}
	})
}
