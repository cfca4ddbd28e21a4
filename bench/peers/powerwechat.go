package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/ArtisanCloud/PowerLibs/v3/object"
	"github.com/ArtisanCloud/PowerWeChat/v3/src/miniProgram"

	"github.com/cloudcall/cloudcall/shared/bench"
)

// powerWeChatVersion is the release required in go.mod.
const powerWeChatVersion = "v3.3.3"

// quotaAnswer is quota/get's documented answer: quota_num is a number.
// PowerWeChat's own response type declares it a string.
type quotaAnswer struct {
	Errcode  int    `json:"errcode"`
	Errmsg   string `json:"errmsg"`
	QuotaNum *int64 `json:"quota_num"`
}

// newPowerWeChat builds PowerWeChat's mini-program application the way its
// README does, with its default log level and the log files moved into
// logDir (its default is ./wechat/info.log in the working directory).
func newPowerWeChat(_ context.Context, base, appID, secret, logDir string) (*bench.PowerWeChatClient, error) {
	app, err := miniProgram.NewMiniProgram(&miniProgram.UserConfig{
		AppID:  appID,
		Secret: secret,
		Http:   miniProgram.Http{BaseURI: base + "/"},
		Log:    miniProgram.Log{File: filepath.Join(logDir, "info.log"), Error: filepath.Join(logDir, "error.log")},
	})
	if err != nil {
		return nil, fmt.Errorf("powerwechat: %w", err)
	}
	// Its token endpoint is a fixed https://api.weixin.qq.com URL that
	// Http.BaseURI does not move; point it at the sandbox too.
	app.AccessToken.EndpointToGetToken = base + "/cgi-bin/token"
	return &bench.PowerWeChatClient{
		Version: powerWeChatVersion,
		Path: func(ctx context.Context, deliveryID, bizID string) (int64, error) {
			var out quotaAnswer
			data := &object.HashMap{"delivery_id": deliveryID, "biz_id": bizID}
			if _, err := app.Express.BaseClient.HttpPostJson(ctx, "cgi-bin/express/business/quota/get", data, nil, nil, &out); err != nil {
				return 0, err
			}
			if out.Errcode != 0 {
				return 0, fmt.Errorf("errcode %d: %s", out.Errcode, out.Errmsg)
			}
			if out.QuotaNum == nil {
				return 0, errors.New("no quota_num")
			}
			return *out.QuotaNum, nil
		},
		GetQuota: func(ctx context.Context, deliveryID, bizID string) error {
			res, err := app.Express.GetQuota(ctx, deliveryID, bizID)
			if err != nil {
				return err
			}
			if res.ErrCode != 0 {
				return fmt.Errorf("errcode %d: %s", res.ErrCode, res.ErrMsg)
			}
			return nil
		},
	}, nil
}
