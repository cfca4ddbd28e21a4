package runtime

import (
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/metrics"
)

// invocationMetrics is the metrics hook: it knows whether the instance has
// served before (cold start) and, on Lambda, where EMF records go.
type invocationMetrics struct {
	served atomic.Bool
	emf    *metrics.EMF // nil: no EMF (FC, HTTP server); the log line carries the fields
}

// setupMetrics turns EMF on when the process serves the Lambda runtime API:
// one record per invocation on stdout, which Lambda sends to CloudWatch Logs.
func (h *Handler) setupMetrics(env *config.Env, out io.Writer) {
	if p, _ := Pick(env); p != PlatformLambda {
		return
	}
	emf, err := metrics.NewEMF(env.Get("CLOUDCALL_METRICS_NAMESPACE", metrics.DefaultNamespace), out)
	if err != nil {
		h.Deps.Log.Warn("metrics: using the default namespace", "namespace", metrics.DefaultNamespace, "error", err.Error())
		emf, _ = metrics.NewEMF(metrics.DefaultNamespace, out)
	}
	h.metrics.emf = emf
}

// observe measures one completed invocation, whatever the log level: it
// writes the EMF record when EMF is on and returns the fields the invocation
// log line adds (errClass, coldStart).
func (h *Handler) observe(meta Meta, resp envelope.Response, d time.Duration) [2]slog.Attr {
	inv := metrics.Invocation{Function: h.Deps.Function, API: h.Op.API, RequestID: meta.RequestID,
		Latency: d, ColdStart: !h.metrics.served.Swap(true)}
	if resp.Err != nil {
		inv.ErrCode = resp.Err.Code
	}
	inv.Partial, inv.Replayed, inv.Unrecorded = resp.Partial, resp.Replayed, resp.Unrecorded
	if e := h.metrics.emf; e != nil {
		if err := e.Write(inv); err != nil {
			h.Deps.Log.Warn("metrics: EMF record not written", "error", err.Error())
		}
	}
	return inv.LogAttrs()
}
