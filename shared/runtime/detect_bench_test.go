package runtime

import (
	"strings"
	"testing"
)

// BenchmarkDetect reads an FC HTTP trigger event with a 1 KB body: every
// HTTP call through FC's go1 runtime or Lambda pays it.
func BenchmarkDetect(b *testing.B) {
	body := `{\"deliveryId\":\"YTO\",\"bizId\":\"` + strings.Repeat("x", 1000) + `\"}`
	ev := []byte(`{"version":"v1","rawPath":"/logistics-get-quota","body":"` + body + `","isBase64Encoded":false,"headers":{"Content-Type":"application/json","Authorization":"CLOUDCALL-HMAC-SHA256 k=v"},"queryParameters":{},"requestContext":{"accountId":"1","domainName":"x","requestId":"r","time":"t","timeEpoch":"1","http":{"method":"POST","path":"/logistics-get-quota","protocol":"HTTP/1.1","sourceIp":"1.2.3.4","userAgent":"ua"}}}`)
	b.Run("detect", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, shape, err := detect(ev, 65536); err != nil || shape != ShapeFCHTTP {
				b.Fatal(shape, err)
			}
		}
	})
	b.Run("eventDuplicate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, dup := eventDuplicate(ev); dup {
				b.Fatal("dup")
			}
		}
	})
}
