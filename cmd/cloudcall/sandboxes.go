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
// Vendor names. Adding a vendor is one line here.
func sandboxes() map[string]vendorSandbox {
	return map[string]vendorSandbox{
		"wechat":   wechatsbx.New(wechatsbx.Options{}),
		"top":      topsbx.New(topsbx.Options{}),
		"ck1":      ck1sbx.New(ck1sbx.Options{}),
		"alicloud": camssbx.New(camssbx.Options{}),
		// Not a function's vendor: quota-alert's channels, given to every
		// function that declares their variables.
		"notify": notifysbx.New(notifysbx.Options{}),
	}
}
