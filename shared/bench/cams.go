package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	openapiutil "github.com/alibabacloud-go/darabonba-openapi/v2/utils"
	"github.com/alibabacloud-go/tea/dara"

	"github.com/cloudcall/cloudcall/shared/alicloud"
	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/envelope"
	cruntime "github.com/cloudcall/cloudcall/shared/runtime"
	"github.com/cloudcall/cloudcall/shared/sandbox/camssbx"
)

// CAMSResult is the same QueryChatappBindWaba call made by the function
// (in-process: decode, validate, rate limiter, sign, call, envelope) and by
// the official darabonba-openapi client, against one sandbox in one run.
type CAMSResult struct {
	Pairs          int
	Ours, Official Dist
	Ratio          float64 // Ours.P50 / Official.P50
	// PairRatio is the median of per-pair ratios (ours ÷ official, the two
	// calls of a pair back to back, which goes first alternating): the
	// verdict, because load that moves during the run lands on both.
	PairRatio    Spread
	SandboxCalls int // QueryChatappBindWaba calls the sandbox answered
}

// camsPeer alternates the two callers, paced at 8 requests/s in total: CAMS
// (and its sandbox) allows 10 per second per AccessKey, so latency, not
// throughput, is what can be compared.
func camsPeer(ctx context.Context, pairs int) (CAMSResult, error) {
	sbx := camssbx.New(camssbx.Options{})
	url, srv, err := serve(sbx.Handler())
	if err != nil {
		return CAMSResult{}, err
	}
	defer srv.Close()

	env := config.FromMap(sbx.Env(url))
	h, err := cruntime.New(ctx, env, cruntime.NewLogger(io.Discard, env), alicloud.CAMSFactory)
	if err != nil {
		return CAMSResult{}, err
	}
	// FC hands the credentials to each invocation; so does the bench (the
	// standard chain would read this process's environment instead).
	meta := cruntime.Meta{Credentials: &envelope.Credentials{AccessKeyID: camssbx.DemoAccessKeyID, AccessKeySecret: camssbx.DemoAccessKeySecret}}
	pl := []byte(`{"custSpaceId":"293483949493"}`)

	client, err := openapi.NewClient(&openapiutil.Config{
		AccessKeyId: dara.String(camssbx.DemoAccessKeyID), AccessKeySecret: dara.String(camssbx.DemoAccessKeySecret),
		Endpoint: dara.String(strings.TrimPrefix(url, "http://")), Protocol: dara.String("HTTP"), RegionId: dara.String("ap-southeast-1"),
	})
	if err != nil {
		return CAMSResult{}, fmt.Errorf("darabonba client: %w", err)
	}
	params := &openapiutil.Params{Action: dara.String("QueryChatappBindWaba"), Version: dara.String("2020-06-06"), Protocol: dara.String("HTTP"),
		Pathname: dara.String("/"), Method: dara.String("POST"), AuthType: dara.String("AK"), Style: dara.String("RPC"),
		ReqBodyType: dara.String("formData"), BodyType: dara.String("json")}
	official := func() error {
		req := &openapiutil.OpenApiRequest{Query: map[string]*string{"CustSpaceId": dara.String("293483949493")}}
		res, err := client.CallApi(params, req, &dara.RuntimeOptions{})
		if err != nil {
			return fmt.Errorf("official client: %w", err)
		}
		body, _ := res["body"].(map[string]any)
		if body["Code"] != "OK" {
			return fmt.Errorf("official client: answer %v", res["body"])
		}
		return nil
	}
	ours := func() error {
		if out := h.Invoke(ctx, pl, meta); !bytes.Contains(out, []byte(`"errCode":0`)) {
			return fmt.Errorf("function in-process: %s", out)
		}
		return nil
	}
	// One of each first: connections, the function's credentials and the
	// official client's setup are not what is compared.
	for _, f := range []func() error{ours, official} {
		if err := f(); err != nil {
			return CAMSResult{}, err
		}
	}
	time.Sleep(time.Second)
	var a, b []time.Duration
	var ratios []float64
	tick := time.NewTicker(125 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < pairs; i++ {
		order := []bool{true, false} // ours first in even pairs
		if i%2 == 1 {
			order = []bool{false, true}
		}
		var mine, theirs time.Duration
		for _, isOurs := range order {
			<-tick.C
			f := official
			if isOurs {
				f = ours
			}
			t0 := time.Now()
			if err := f(); err != nil {
				return CAMSResult{}, err
			}
			if d := time.Since(t0); isOurs {
				a, mine = append(a, d), d
			} else {
				b, theirs = append(b, d), d
			}
		}
		ratios = append(ratios, float64(mine)/float64(theirs))
	}
	r := CAMSResult{Pairs: pairs, Ours: distOf(a), Official: distOf(b), SandboxCalls: sbx.Calls("QueryChatappBindWaba")}
	r.Ratio = ratio(r.Ours.P50, r.Official.P50)
	r.PairRatio = spreadOf(ratios)
	r.PairRatio.Unit = "pairs"
	return r, nil
}
