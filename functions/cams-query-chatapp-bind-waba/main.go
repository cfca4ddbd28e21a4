// Command cams-query-chatapp-bind-waba is Alibaba Cloud CAMS
// QueryChatappBindWaba as a cloud call: the WhatsApp Business Account bound
// to a customer.
package main

import (
	"github.com/cloudcall/cloudcall/shared/alicloud"
	"github.com/cloudcall/cloudcall/shared/runtime"
)

func main() { runtime.Main(alicloud.CAMSFactory) }
