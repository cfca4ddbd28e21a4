package wechat

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/envelope"
)

// decodeAnswer reads an answer once into a type that embeds status, and
// still reports an error answer whose other fields do not fit the type.
func TestDecodeAnswer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		body    string
		errcode int
		quota   *int64
		code    int // envelope code of a decode failure; 0: none
	}{
		{"success", `{"errcode":0,"errmsg":"ok","quota_num":210}`, 0, ptr(210), 0},
		{"success without errcode", `{"quota_num":0}`, 0, ptr(0), 0},
		{"api error", `{"errcode":40001,"errmsg":"invalid credential"}`, 40001, nil, 0},
		{"api error with an odd field", `{"errcode":9300511,"errmsg":"x","quota_num":"n/a"}`, 9300511, nil, 0},
		{"success with an odd field", `{"errcode":0,"quota_num":"210"}`, 0, nil, envelope.CodeUpstreamMalformed},
		{"not json", `<html>`, 0, nil, envelope.CodeUpstreamMalformed},
		// WeChat's type is "number": a whole number is one in any spelling.
		{"a whole number with a fraction part", `{"quota_num":210.0}`, 0, ptr(210), 0},
		{"a whole number with an exponent", `{"quota_num":2.1e2}`, 0, ptr(210), 0},
		{"a whole number with a negative exponent", `{"quota_num":21000E-2}`, 0, ptr(210), 0},
		{"zero with an exponent", `{"quota_num":0e500}`, 0, ptr(0), 0},
		{"negative zero", `{"quota_num":-0.0}`, 0, ptr(0), 0},
		{"int64's largest", `{"quota_num":9.223372036854775807e18}`, 0, ptr(9223372036854775807), 0},
		{"a fraction is no count", `{"quota_num":210.5}`, 0, nil, envelope.CodeUpstreamMalformed},
		{"past int64", `{"quota_num":99999999999999999999}`, 0, nil, envelope.CodeUpstreamMalformed},
		{"an exponent too large to compute", `{"quota_num":1e999999999}`, 0, nil, envelope.CodeUpstreamMalformed},
		{"null is no balance", `{"errcode":0,"quota_num":null}`, 0, nil, 0},
		// Zeros that change nothing never make a value unreadable.
		{"zero with an exponent past int", `{"quota_num":0e99999999999999999999}`, 0, ptr(0), 0},
		{"zero with 120 zeros after the point", `{"quota_num":0.` + strings.Repeat("0", 120) + `}`, 0, ptr(0), 0},
		{"210 with 120 zeros after the point", `{"quota_num":210.` + strings.Repeat("0", 120) + `}`, 0, ptr(210), 0},
		{"1 written as 31 digits and an exponent", `{"quota_num":1` + strings.Repeat("0", 30) + `e-30}`, 0, ptr(1), 0},
		{"a fraction far after the point", `{"quota_num":210.` + strings.Repeat("0", 120) + `1}`, 0, nil, envelope.CodeUpstreamMalformed},
		{"1 written with 450 zeros and an exponent", `{"quota_num":1` + strings.Repeat("0", 450) + `e-450}`, 0, ptr(1), 0},
		{"21000e-2", `{"quota_num":21000e-2}`, 0, ptr(210), 0},
		{"20 significant digits", `{"quota_num":12345678901234567891}`, 0, nil, envelope.CodeUpstreamMalformed},
		{"int64's smallest", `{"quota_num":-9223372036854775808.0}`, 0, ptr(-9223372036854775808), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out quotaAnswer
			out.Errcode = 45009 // left over from an earlier try: must not survive
			st, err := decodeAnswer([]byte(tc.body), &out)
			if tc.code != 0 {
				var e *envelope.Error
				require.ErrorAs(t, err, &e)
				require.Equal(t, tc.code, e.Code)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.errcode, st.Errcode)
			if tc.quota != nil {
				require.NotNil(t, out.QuotaNum)
				require.Equal(t, *tc.quota, int64(*out.QuotaNum))
			}
		})
	}
	// A type without status: the status alone is read (Call decodes the
	// rest after checking it).
	var plain struct{ X int }
	st, err := decodeAnswer([]byte(`{"errcode":-1,"X":1}`), &plain)
	require.NoError(t, err)
	require.Equal(t, -1, st.Errcode)
	require.Zero(t, plain.X)
}

// The URL comes from the path's parsed template plus the escaped token; a
// new token replaces the cached escape.
func TestURLTemplate(t *testing.T) {
	c := &Client{base: "http://127.0.0.1:9"}
	u, err := c.url(pathQuotaGet, "t+1/=")
	require.NoError(t, err)
	require.Equal(t, "http://127.0.0.1:9/cgi-bin/express/business/quota/get?access_token=t%2B1%2F%3D", u.String())
	require.Equal(t, "127.0.0.1:9", u.Host)

	u, err = c.url("/cgi-bin/x?lang=zh_CN", "t+1/=")
	require.NoError(t, err)
	require.Equal(t, "lang=zh_CN&access_token=t%2B1%2F%3D", u.RawQuery)

	u, err = c.url(pathQuotaGet, "second")
	require.NoError(t, err)
	require.Equal(t, "access_token=second", u.RawQuery)

	again, err := c.url(pathQuotaGet, "second")
	require.NoError(t, err)
	require.NotSame(t, u, again, "each call gets its own copy")
	again.RawQuery = "changed"
	u2, _ := c.url(pathQuotaGet, "second")
	require.Equal(t, "access_token=second", u2.RawQuery, "the template is not modified")
}

func ptr(n int64) *int64 { return &n }
