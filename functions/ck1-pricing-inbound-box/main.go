// Command ck1-pricing-inbound-box is CK1 POST /v1/pricing/inbound/box as a
// cloud call: a first-leg freight quote per shipping service.
package main

import (
	"github.com/cloudcall/cloudcall/shared/ck1"
	"github.com/cloudcall/cloudcall/shared/runtime"
)

func main() { runtime.Main(ck1.Factory) }
