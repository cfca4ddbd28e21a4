package ck1

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/registry"
	"github.com/cloudcall/cloudcall/shared/runtime"
	"github.com/cloudcall/cloudcall/shared/upstream"
)

// defaultBase is the vendor's own address (CK1_API_BASE unset).
const defaultBase = "https://openapi.chukou1.cn"

// APIInboundBox is the errMsg prefix of the function.
const APIInboundBox = "ck1.pricing.inboundBox"

// Box is InboundBox. Its rules (all five required, weight 1..2147483647 g,
// sides decimal(8,2), quantity an integer) are the registry's schema
// (ck1-pricing-inbound-box.input.json), checked before this is filled.
type Box struct {
	Weight   *int64  `json:"weight"`
	Length   Decimal `json:"length"`
	Width    Decimal `json:"width"`
	Height   Decimal `json:"height"`
	Quantity Integer `json:"quantity"`
}

// BoxInput is the function's input. The optional members are pointers so
// that what the caller sent is what CK1 gets: an absent one is left out, and
// "" or false is sent as given (the seed states no default for any of them).
type BoxInput struct {
	ServiceCode         *string `json:"serviceCode"`
	WarehouseID         string  `json:"warehouseId"`
	LocationID          *string `json:"locationId"`
	Boxes               []Box   `json:"boxes"`
	IncludeUnsuccessful *bool   `json:"includeUnsuccessful"`
	IsCustomsClearance  *bool   `json:"isCustomsClearance"`
	IsBorrowTaxNo       *bool   `json:"isBorrowTaxNo"`
}

// wire types in CK1's spelling.
type wireBox struct {
	Weight   int64   `json:"Weight"`
	Length   Decimal `json:"Length"`
	Width    Decimal `json:"Width"`
	Height   Decimal `json:"Height"`
	Quantity Integer `json:"Quantity"`
}

type wireRequest struct {
	ServiceCode         *string   `json:"ServiceCode,omitempty"`
	WarehouseID         string    `json:"WarehouseId"`
	LocationID          *string   `json:"LocationId,omitempty"`
	Boxes               []wireBox `json:"Boxes"`
	IncludeUnsuccessful *bool     `json:"IncludeUnsuccessful,omitempty"`
	IsCustomsClearance  *bool     `json:"IsCustomsClearance,omitempty"`
	IsBorrowTaxNo       *bool     `json:"IsBorrowTaxNo,omitempty"`
}

type wireMoney struct {
	Currency string      `json:"Currency"`
	Amount   json.Number `json:"Amount"`
}

type wireDetail struct {
	Currency   string      `json:"Currency"`
	Amount     json.Number `json:"Amount"`
	ChargeName string      `json:"ChargeName"`
	Remark     string      `json:"Remark"`
}

type wireService struct {
	ServiceCode string `json:"ServiceCode"`
	ServiceName string `json:"ServiceName"`
	Success     bool   `json:"Success"`
	Message     string `json:"Message"`
	ChargeInfo  *struct {
		Summary []wireMoney  `json:"Summary"`
		Detail  []wireDetail `json:"Detail"`
	} `json:"ChargeInfo"`
	TotalCharge json.RawMessage `json:"TotalCharge"` // production only; object or list

	LogisticsTimes *struct {
		Min json.Number `json:"Min"`
		Max json.Number `json:"Max"`
	} `json:"LogisticsTimes"`
}

// Money is an amount with its exact decimal digits.
type Money struct {
	Currency string      `json:"currency"`
	Amount   json.Number `json:"amount"`
}

// ChargeDetail is one line of a quote.
type ChargeDetail struct {
	Currency   string      `json:"currency"`
	Amount     json.Number `json:"amount"`
	ChargeName string      `json:"chargeName"`
	Remark     string      `json:"remark"`
}

// ChargeInfo is a quote's totals per currency and its lines.
type ChargeInfo struct {
	Summary []Money        `json:"summary"`
	Detail  []ChargeDetail `json:"detail"`
}

// LogisticsTimes is the delivery time range in hours.
type LogisticsTimes struct {
	Min json.Number `json:"min"`
	Max json.Number `json:"max"`
}

// Service is one shipping service's quote.
type Service struct {
	ServiceCode    string          `json:"serviceCode"`
	ServiceName    string          `json:"serviceName"`
	Success        bool            `json:"success"`
	Message        string          `json:"message"`
	ChargeInfo     ChargeInfo      `json:"chargeInfo"`
	TotalCharge    *Money          `json:"totalCharge,omitempty"`
	LogisticsTimes *LogisticsTimes `json:"logisticsTimes,omitempty"`
}

// BoxOutput is the success payload.
type BoxOutput struct {
	Services []Service `json:"services"`
}

// InboundBox quotes a list of boxes.
func (c *Client) InboundBox(ctx context.Context, in *BoxInput) (*BoxOutput, error) {
	req := wireRequest{ServiceCode: in.ServiceCode, WarehouseID: in.WarehouseID, LocationID: in.LocationID,
		IncludeUnsuccessful: in.IncludeUnsuccessful, IsCustomsClearance: in.IsCustomsClearance, IsBorrowTaxNo: in.IsBorrowTaxNo,
		Boxes: make([]wireBox, 0, len(in.Boxes))} // an empty list is sent as [], never null
	for _, b := range in.Boxes {
		req.Boxes = append(req.Boxes, wireBox{Weight: *b.Weight, Length: b.Length, Width: b.Width, Height: b.Height, Quantity: b.Quantity})
	}
	var ws []wireService
	if err := c.Post(ctx, "/v1/pricing/inbound/box", req, &ws); err != nil {
		return nil, err
	}
	if err := complete(ws); err != nil {
		return nil, upstream.Malformed("ck1", http.StatusOK, err)
	}
	out := &BoxOutput{Services: make([]Service, 0, len(ws))}
	for _, w := range ws {
		s := Service{ServiceCode: w.ServiceCode, ServiceName: w.ServiceName, Success: w.Success, Message: w.Message,
			ChargeInfo: ChargeInfo{Summary: []Money{}, Detail: []ChargeDetail{}}}
		if w.ChargeInfo != nil {
			for _, m := range w.ChargeInfo.Summary {
				s.ChargeInfo.Summary = append(s.ChargeInfo.Summary, Money{Currency: m.Currency, Amount: m.Amount})
			}
			for _, d := range w.ChargeInfo.Detail {
				s.ChargeInfo.Detail = append(s.ChargeInfo.Detail, ChargeDetail{Currency: d.Currency, Amount: d.Amount, ChargeName: d.ChargeName, Remark: d.Remark})
			}
		}
		s.TotalCharge = totalCharge(w.TotalCharge, s.ChargeInfo.Summary)
		if w.LogisticsTimes != nil && w.LogisticsTimes.Min != "" && w.LogisticsTimes.Max != "" {
			s.LogisticsTimes = &LogisticsTimes{Min: w.LogisticsTimes.Min, Max: w.LogisticsTimes.Max}
		}
		out.Services = append(out.Services, s)
	}
	return out, nil
}

// complete refuses an answer that reads as a quote it is not: CK1 documents
// an array of services, each amount with its decimal digits (vendor note
// §3, "CK1 inbound box pricing contract"). A null body or an amount that is
// absent or null would otherwise become no services or an amount of 0.
func complete(ws []wireService) error {
	if ws == nil {
		return fmt.Errorf("ck1: the answer is null, not the documented array of services")
	}
	for i, w := range ws {
		if w.ChargeInfo == nil {
			continue
		}
		for j, m := range w.ChargeInfo.Summary {
			if m.Amount == "" {
				return fmt.Errorf("ck1: [%d].ChargeInfo.Summary[%d].Amount is absent or null", i, j)
			}
		}
		for j, d := range w.ChargeInfo.Detail {
			if d.Amount == "" {
				return fmt.Errorf("ck1: [%d].ChargeInfo.Detail[%d].Amount is absent or null", i, j)
			}
		}
	}
	return nil
}

// totalCharge is CK1's own TotalCharge when it sends a single amount
// (production does, the sandbox documentation does not). Otherwise it is
// derived only when every summary amount is in one currency: the exact
// decimal sum. Amounts in different currencies have no total without an
// exchange rate, so then (and for a failed service) it is left out.
func totalCharge(raw json.RawMessage, summary []Money) *Money {
	var one wireMoney
	var list []wireMoney
	switch {
	case json.Unmarshal(raw, &one) == nil && one.Currency != "" && one.Amount != "":
		return &Money{Currency: one.Currency, Amount: one.Amount}
	case json.Unmarshal(raw, &list) == nil && len(list) == 1 && list[0].Amount != "":
		return &Money{Currency: list[0].Currency, Amount: list[0].Amount}
	}
	if len(summary) == 0 {
		return nil
	}
	amounts := make([]json.Number, 0, len(summary))
	for _, m := range summary {
		if m.Currency != summary[0].Currency {
			return nil
		}
		amounts = append(amounts, m.Amount)
	}
	sum, err := sumExact(amounts)
	if err != nil {
		return nil
	}
	return &Money{Currency: summary[0].Currency, Amount: sum}
}

// BoxOp is the operation on a client.
func BoxOp(c *Client) envelope.Op {
	schema := sync.OnceValue(func() *envelope.Schema {
		return envelope.MustCompileSchema(registry.InputSchema("ck1-pricing-inbound-box"))
	})
	// The compile (~0.15 ms in a fresh process) runs in the runtime's
	// background warm-up, overlapping its first poll.
	return envelope.Op{API: APIInboundBox, Warm: func(context.Context) { schema() }, Handle: func(ctx context.Context, in *envelope.Input) (any, error) {
		var q BoxInput
		if err := envelope.DecodeInput(in.Body, schema().For(in), &q); err != nil {
			return nil, err
		}
		return c.InboundBox(WithCallBudget(ctx), &q)
	}}
}

// Factory builds ck1-pricing-inbound-box from the environment: a fixed
// CK1_ACCESS_TOKEN, or OAuth with CK1_CLIENT_ID, CK1_CLIENT_SECRET and
// CK1_REFRESH_TOKEN.
func Factory(_ context.Context, d runtime.Deps) (envelope.Op, error) {
	fail := envelope.Op{API: APIInboundBox}
	base, err := upstream.Base(d.Env, "CK1_API_BASE", d.Env.Get("CK1_API_BASE", defaultBase), defaultBase)
	if err != nil {
		return fail, err
	}
	fixed, err := d.Env.Secret("CK1_ACCESS_TOKEN")
	if err != nil {
		return fail, err
	}
	if fixed != "" {
		return BoxOp(NewClient(base, d.HTTP, Fixed(fixed))), nil
	}
	sec, err := d.Env.RequireSecrets("CK1_CLIENT_SECRET", "CK1_REFRESH_TOKEN")
	if err != nil && sec == nil {
		return fail, err // set but unusable (whitespace, an unreadable _FILE): the error names it
	}
	id := d.Env.Get("CK1_CLIENT_ID", "")
	if err != nil || id == "" {
		return fail, fmt.Errorf("set CK1_ACCESS_TOKEN (a fixed token), or CK1_CLIENT_ID, CK1_CLIENT_SECRET and CK1_REFRESH_TOKEN (OAuth)")
	}
	if err := needsSharedStore(d.Env); err != nil {
		return fail, err
	}
	// A refresh needs time left in the call (MinRefreshTime); with a short
	// CLOUDCALL_TIMEOUT the default 3 s would leave no call able to refresh.
	timeout := cmp.Or(d.Timeout, runtime.DefaultTimeout)
	tokens := NewOAuth(OAuthOptions{Base: base, ClientID: id, ClientSecret: sec["CK1_CLIENT_SECRET"], SeedRefreshToken: sec["CK1_REFRESH_TOKEN"],
		HTTP: d.HTTP, KV: d.Store, Log: d.Log, Remember: d.Env.Remember, MinRefreshTime: min(defaultMinRefreshTime, timeout/2)})
	return BoxOp(NewClient(base, d.HTTP, tokens)), nil
}

// needsSharedStore refuses OAuth on the memory store. CK1's refresh tokens
// are single-use: on memory every new instance spends CK1_REFRESH_TOKEN and
// keeps the pair it gets only in its own memory, so the second instance (or
// the first one's restart) presents a spent token and answers "authorize
// again", whatever the operator does. CK1_ALLOW_MEMORY_STORE=true is the
// named way out for a process that is the only one ever to use the token
// (a test against a fresh sandbox).
func needsSharedStore(env *config.Env) error {
	st, err := env.SecretOrWord("CLOUDCALL_STORE", "memory")
	if err != nil {
		return err
	}
	if env.Bool("CK1_ALLOW_MEMORY_STORE", false) {
		return nil
	}
	if env.Bool("CLOUDCALL_STORE_EPHEMERAL", false) {
		// cloudcall local / invoke on its embedded store, against the
		// real CK1: the rotated pair would die with the emulator.
		return errors.New("CK1 OAuth against the real CK1 needs a store that outlives this emulator: refresh tokens are single-use, and the embedded store is gone when it stops, " +
			"taking the rotated pair with it (the next run would present the spent CK1_REFRESH_TOKEN). Run cloudcall local --store redis://... (a Redis that persists), or use a fixed CK1_ACCESS_TOKEN")
	}
	if st = strings.TrimSpace(st); st != "" && st != "memory" {
		return nil
	}
	return errors.New("CK1 OAuth needs a shared store: refresh tokens are single-use, and with CLOUDCALL_STORE=memory each instance spends CK1_REFRESH_TOKEN and keeps the new pair only in its memory, so a second instance or a restart is refused by CK1. " +
		"Set CLOUDCALL_STORE to a redis:// or rediss:// URL (with persistence), or use a fixed CK1_ACCESS_TOKEN (or, for a lone process on a token nothing else uses, CK1_ALLOW_MEMORY_STORE=true)")
}
