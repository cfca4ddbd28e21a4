// Command logistics-get-quota is WeChat logistics.getQuota as a cloud call:
// {deliveryId, bizId} → {errCode, errMsg, quotaNum}.
package main

import (
	"github.com/cloudcall/cloudcall/shared/runtime"
	"github.com/cloudcall/cloudcall/shared/wechat"
)

func main() { runtime.Main(wechat.GetQuotaFactory) }
