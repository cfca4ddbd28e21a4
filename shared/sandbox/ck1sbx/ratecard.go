package ck1sbx

import (
	"fmt"
	"math"
	"math/big"
)

// The demo rate card. It is invented (CK1 publishes no formula) but follows
// how first-leg freight is priced, so quotes can be checked by hand:
//
//   - per box, volumetric grams = ceil(length × width × height (cm³) × 1000 / divisor);
//   - per box, chargeable grams = max(actual, volumetric); a line counts quantity times;
//   - freight = first weight (the first 1000 g) + each started 500 g above it × additional;
//   - air services add a 10% fuel surcharge on freight, rounded half-up to 0.01;
//   - isCustomsClearance adds CNY 45.00, isBorrowTaxNo adds CNY 20.00, per request;
//   - a service with MaxSideCM fails for a box with a longer side ("oversize").
//
// Amounts are computed exactly (big.Rat) and written with two decimals.

// Service is one shipping service of a warehouse.
type Service struct {
	Code, Name  string
	Currency    string
	Divisor     int64
	FirstCents  int64 // first 1000 g
	AddCents    int64 // each started 500 g above 1000 g
	Fuel        bool  // 10% fuel surcharge
	MaxSideCM   int64 // 0: no limit
	MinH, MaxH  int   // delivery time, hours
	WarehouseID string
}

// Warehouse is a CK1 overseas warehouse.
type Warehouse struct {
	ID, Name string
	Services []Service
}

// DemoWarehouses is the rate card.
func DemoWarehouses() []Warehouse {
	return []Warehouse{
		{ID: "US", Name: "美国洛杉矶仓 (USLAX)", Services: []Service{
			{Code: "USSEA", Name: "美国海运头程", Currency: "CNY", Divisor: 6000, FirstCents: 5800, AddCents: 950, MinH: 600, MaxH: 840},
			{Code: "USAIR", Name: "美国空运头程", Currency: "USD", Divisor: 5000, FirstCents: 980, AddCents: 315, Fuel: true, MaxSideCM: 120, MinH: 168, MaxH: 240},
		}},
		{ID: "UK", Name: "英国伦敦仓 (UKLON)", Services: []Service{
			{Code: "UKAIR", Name: "英国空运头程", Currency: "GBP", Divisor: 5000, FirstCents: 740, AddCents: 225, Fuel: true, MaxSideCM: 100, MinH: 192, MaxH: 264},
			{Code: "UKSEA", Name: "英国海运头程", Currency: "CNY", Divisor: 6000, FirstCents: 6200, AddCents: 1020, MinH: 720, MaxH: 960},
		}},
	}
}

const (
	customsCents = 4500
	taxNoCents   = 2000
)

// box is a parsed request box.
type box struct {
	weight   int64
	dims     [3]*big.Rat
	quantity *big.Int // any integer: CK1 documents no range
}

type line struct {
	currency, name, remark string
	cents                  int64
}

// maxChargeGrams is the largest total chargeable weight the sandbox prices:
// CK1 weighs in Int32 grams, so a total no Int32 holds is no CK1 weight.
const maxChargeGrams = math.MaxInt32

// quote prices boxes on one service. ok is false with a reason when the
// service cannot carry them. Every step is exact (big.Int): a quantity or a
// side at the edge of its type gives a refusal, never a wrapped number.
func (s Service) quote(boxes []box, customs, taxNo bool) (lines []line, ok bool, reason string) {
	total := new(big.Int)
	for _, b := range boxes {
		for _, d := range b.dims {
			if s.MaxSideCM > 0 && d.Cmp(new(big.Rat).SetInt64(s.MaxSideCM)) > 0 {
				return nil, false, fmt.Sprintf("超长: 单边 %s cm 超过 %d cm (oversize)", d.FloatString(2), s.MaxSideCM)
			}
		}
		vol := new(big.Rat).Mul(b.dims[0], b.dims[1])
		vol.Mul(vol, b.dims[2])
		vol.Mul(vol, big.NewRat(1000, s.Divisor))
		charge := ceil(vol)
		if w := big.NewInt(b.weight); w.Cmp(charge) > 0 {
			charge = w
		}
		total.Add(total, charge.Mul(charge, b.quantity))
	}
	switch {
	case total.Sign() <= 0:
		return nil, false, "计费重必须大于 0 (no chargeable weight: no boxes, or quantities of 0 or less)"
	case total.Cmp(big.NewInt(maxChargeGrams)) > 0:
		return nil, false, fmt.Sprintf("计费重 %s g 超出范围 (chargeable weight over %d g)", total, maxChargeGrams)
	}
	grams := total.Int64() // ≤ MaxInt32 from here: the sums below fit int64
	freight := s.FirstCents
	if grams > 1000 {
		freight += (grams - 1000 + 499) / 500 * s.AddCents
	}
	lines = append(lines, line{s.Currency, "头程运费 Freight", fmt.Sprintf("计费重 %d g", grams), freight})
	if s.Fuel {
		fuel := (freight*10 + 50) / 100 // 10%, half-up to the cent
		lines = append(lines, line{s.Currency, "燃油附加费 Fuel surcharge", "10%", fuel})
	}
	if customs {
		lines = append(lines, line{"CNY", "代付关税手续费 Customs clearance fee", "", customsCents})
	}
	if taxNo {
		lines = append(lines, line{"CNY", "借用税号费 Tax number fee", "", taxNoCents})
	}
	return lines, true, ""
}

// ceil rounds up (toward +∞).
func ceil(r *big.Rat) *big.Int {
	q, m := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
	if m.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	return q
}

// cents formats an amount with exactly two decimals.
func cents(c int64) string { return fmt.Sprintf("%d.%02d", c/100, c%100) }
