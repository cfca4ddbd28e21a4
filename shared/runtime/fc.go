package runtime

import (
	"context"
	"encoding/json"

	"github.com/aliyun/fc-runtime-go-sdk/fc"
	"github.com/aliyun/fc-runtime-go-sdk/fccontext"

	"github.com/cloudcall/cloudcall/shared/envelope"
)

// startFC serves the FC go1 runtime API through the official SDK. The handler
// takes []byte so the SDK hands over the raw payload, and returns raw JSON so
// the envelope goes out byte for byte.
func startFC(h *Handler) {
	fc.Start(func(ctx context.Context, payload []byte) (json.RawMessage, error) {
		return h.Invoke(ctx, payload, fcMeta(ctx)), nil
	})
}

func fcMeta(ctx context.Context) Meta {
	fctx, ok := fccontext.FromContext(ctx)
	if !ok {
		return Meta{}
	}
	m := Meta{RequestID: fctx.RequestID}
	if c := fctx.Credentials; c.AccessKeyId != "" {
		m.Credentials = &envelope.Credentials{
			AccessKeyID:     c.AccessKeyId,
			AccessKeySecret: c.AccessKeySecret,
			SecurityToken:   c.SecurityToken,
		}
	}
	return m
}
