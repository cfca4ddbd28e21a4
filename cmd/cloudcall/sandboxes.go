package main

import (
	"net/http"

	"github.com/cloudcall/cloudcall/shared/sandbox/camssbx"
	"github.com/cloudcall/cloudcall/shared/sandbox/ck1sbx"
	"github.com/cloudcall/cloudcall/shared/sandbox/notifysbx"
	"github.com/cloudcall/cloudcall/shared/sandbox/topsbx"
	"github.com/cloudcall/cloudcall/shared/sandbox/wechatsbx"
)

// vendorSandbox is what the emulator needs of a vendor sandbox.
type vendorSandbox interface {
	Handler() http.Handler
	Env(baseURL string) map[string]string
	Admin() string // the admin path that shows what arrived
}

// sandboxes builds one fresh sandbox per vendor, keyed by the registry's
// Vendor names. Adding a vendor is one line here. The TOP sandbox also
// takes topSession (the one an --env-file sets, when it sets one): a user
// trying a seller's new session restarts with it, which restarts the
// sandbox too, and its 27 "Invalid Session" said nothing of why.
func sandboxes(topSession string) map[string]vendorSandbox {
	sessions := []string{topsbx.DemoSession}
	if topSession != "" && topSession != topsbx.DemoSession {
		sessions = append(sessions, topSession)
	}
	return map[string]vendorSandbox{
		"wechat":   wechatsbx.New(wechatsbx.Options{}),
		"top":      topsbx.New(topsbx.Options{Sessions: sessions}),
		"ck1":      ck1sbx.New(ck1sbx.Options{}),
		"alicloud": camssbx.New(camssbx.Options{}),
		// Not a function's vendor: quota-alert's channels, given to every
		// function that declares their variables.
		"notify": notifysbx.New(notifysbx.Options{}),
	}
}
