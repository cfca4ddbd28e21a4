package notifysbx_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/notify"
	"github.com/cloudcall/cloudcall/shared/sandbox/notifysbx"
)

func channels(env map[string]string, secretOverride string, now func() time.Time) []notify.Channel {
	o := notify.Options{Attempts: 1, Now: now, HTTP: http.DefaultClient}
	sec := func(k string) string {
		if secretOverride != "" {
			return secretOverride
		}
		return env[k]
	}
	return []notify.Channel{
		notify.DingTalk{URL: env["QUOTA_ALERT_DINGTALK_URL"], Secret: sec("QUOTA_ALERT_DINGTALK_SECRET"), Opts: o},
		notify.Feishu{URL: env["QUOTA_ALERT_FEISHU_URL"], Secret: sec("QUOTA_ALERT_FEISHU_SECRET"), Opts: o},
		notify.Webhook{URL: env["QUOTA_ALERT_WEBHOOK_URL"], Secret: sec("QUOTA_ALERT_WEBHOOK_SECRET"), Opts: o},
	}
}

func TestEveryChannelAcceptsASignedMessage(t *testing.T) {
	sb := notifysbx.New(notifysbx.Options{})
	srv := httptest.NewServer(sb.Handler())
	defer srv.Close()
	env := sb.Env(srv.URL)
	chs := append(channels(env, "", nil),
		notify.WeCom{URL: env["QUOTA_ALERT_WECOM_URL"], Opts: notify.Options{Attempts: 1, HTTP: http.DefaultClient}},
		notify.Slack{URL: env["QUOTA_ALERT_SLACK_URL"], Opts: notify.Options{Attempts: 1, HTTP: http.DefaultClient}})
	for _, ch := range chs {
		require.NoError(t, ch.Send(context.Background(), notify.Message{Title: "low", Text: "YTO 42 left", Data: map[string]any{"quota": 42}}), ch.Name())
	}
	msgs := sb.Messages()
	require.Len(t, msgs, 5)
	var names []string
	for _, m := range msgs {
		require.True(t, m.Accepted, "%+v", m)
		require.Contains(t, string(m.Body), "42")
		names = append(names, m.Channel)
	}
	require.Equal(t, []string{"dingtalk", "feishu", "webhook", "wecom", "slack"}, names)

	// The admin view lists the same.
	resp, err := http.Get(srv.URL + sb.Admin())
	require.NoError(t, err)
	var out struct {
		Messages []notifysbx.Message `json:"messages"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.Len(t, out.Messages, 5)
}

func TestSignaturesAreChecked(t *testing.T) {
	sb := notifysbx.New(notifysbx.Options{})
	srv := httptest.NewServer(sb.Handler())
	defer srv.Close()
	env := sb.Env(srv.URL)
	msg := notify.Message{Title: "t", Text: "x"}
	cases := []struct {
		name  string
		chs   []notify.Channel
		wants []string
	}{
		{"wrong secret", channels(env, "not-the-secret", nil), []string{"sign not match", "sign match fail", "X-Cloudcall-Signature does not match"}},
		{"stale timestamp", channels(env, "", func() time.Time { return time.Now().Add(-2 * time.Hour) }), []string{"more than an hour", "not within one hour", "more than 5 minutes"}},
		{"no secret at all", []notify.Channel{
			notify.DingTalk{URL: env["QUOTA_ALERT_DINGTALK_URL"], Opts: notify.Options{Attempts: 1, HTTP: http.DefaultClient}},
			notify.Feishu{URL: env["QUOTA_ALERT_FEISHU_URL"], Opts: notify.Options{Attempts: 1, HTTP: http.DefaultClient}},
			notify.Webhook{URL: env["QUOTA_ALERT_WEBHOOK_URL"], Opts: notify.Options{Attempts: 1, HTTP: http.DefaultClient}},
		}, []string{"timestamp is missing", "not within one hour", "X-Cloudcall-Timestamp missing"}},
		{"wrong keys in the URL", []notify.Channel{
			notify.WeCom{URL: srv.URL + "/cgi-bin/webhook/send?key=nope", Opts: notify.Options{Attempts: 1, HTTP: http.DefaultClient}},
			notify.Slack{URL: srv.URL + "/services/T/B/nope", Opts: notify.Options{Attempts: 1, HTTP: http.DefaultClient}},
		}, []string{"invalid webhook url", "no_service"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(sb.Messages())
			for _, ch := range tc.chs {
				require.Error(t, ch.Send(context.Background(), msg), ch.Name())
			}
			got := sb.Messages()[before:]
			require.Len(t, got, len(tc.wants))
			for i, m := range got {
				require.False(t, m.Accepted)
				require.Contains(t, m.Reason, tc.wants[i])
			}
		})
	}
}

func TestBoundedHistory(t *testing.T) {
	sb := notifysbx.New(notifysbx.Options{MaxMessages: 3})
	srv := httptest.NewServer(sb.Handler())
	defer srv.Close()
	ch := notify.Slack{URL: sb.Env(srv.URL)["QUOTA_ALERT_SLACK_URL"], Opts: notify.Options{Attempts: 1, HTTP: http.DefaultClient}}
	for _, s := range []string{"1", "2", "3", "4", "5"} {
		require.NoError(t, ch.Send(context.Background(), notify.Message{Title: s, Text: s}))
	}
	msgs := sb.Messages()
	require.Len(t, msgs, 3)
	require.Contains(t, string(msgs[0].Body), `*3*`)
}
