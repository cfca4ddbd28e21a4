// Command quota-alert runs on a timer: it checks the watched courier
// accounts' waybill balances and warns before they run out.
package main

import "github.com/cloudcall/cloudcall/shared/runtime"

func main() { runtime.Main(factory) }
