// Command top-launch-extra-charge is TOP alibaba.ascp.industry.launch.extra.charge
// as a cloud call, at most once per idempotency key.
package main

import (
	"github.com/cloudcall/cloudcall/shared/runtime"
	"github.com/cloudcall/cloudcall/shared/top"
)

func main() { runtime.Main(top.Factory) }
