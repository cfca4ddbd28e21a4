package alicloud_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alibabacloud-go/darabonba-openapi/v2/utils"
	"github.com/alibabacloud-go/tea/dara"
	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/alicloud"
	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/sandbox"
	"github.com/cloudcall/cloudcall/shared/sandbox/camssbx"
	"github.com/cloudcall/cloudcall/shared/store"
)

func TestOfficialV3Vector(t *testing.T) {
	headers := map[string]string{
		"host": "ecs.cn-shanghai.aliyuncs.com", "x-acs-action": "RunInstances", "x-acs-version": "2014-05-26",
		"x-acs-date": "2023-10-26T10:22:32Z", "x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d",
		"x-acs-content-sha256": alicloud.EmptyHash,
	}
	query := map[string]string{"ImageId": "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd", "RegionId": "cn-shanghai"}
	canon, _ := alicloud.CanonicalRequest("POST", "/", query, headers, alicloud.EmptyHash)
	require.Equal(t, "POST\n/\nImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai\n"+
		"host:ecs.cn-shanghai.aliyuncs.com\nx-acs-action:RunInstances\nx-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"+
		"x-acs-date:2023-10-26T10:22:32Z\nx-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\nx-acs-version:2014-05-26\n\n"+
		"host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", canon)
	require.Equal(t, "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0",
		alicloud.SignV3("POST", "/", query, headers, alicloud.EmptyHash, "YourAccessKeyId", "YourAccessKeySecret"))
}

func TestDerivedCAMSVectors(t *testing.T) {
	base := func() map[string]string {
		return map[string]string{"host": "cams.ap-southeast-1.aliyuncs.com", "x-acs-action": "QueryChatappBindWaba", "x-acs-version": "2020-06-06",
			"x-acs-date": "2024-01-01T00:00:00Z", "x-acs-signature-nonce": "0123456789abcdef0123456789abcdef", "x-acs-content-sha256": alicloud.EmptyHash}
	}
	q := map[string]string{"CustSpaceId": "293483****49493", "IsvCode": "aksik93kdkkxmwol9****"}
	require.Equal(t, "CustSpaceId=293483%2A%2A%2A%2A49493&IsvCode=aksik93kdkkxmwol9%2A%2A%2A%2A", alicloud.CanonicalQuery(q))
	require.True(t, strings.HasSuffix(alicloud.SignV3("POST", "/", q, base(), alicloud.EmptyHash, "testAccessKeyId", "testAccessKeySecret"),
		"Signature=abcddecae65d771ea42735c93ed6e33e56f145d0c22cbb8493b02d5b718da94c"))
	h := base()
	h["x-acs-security-token"] = "testSecurityToken"
	require.Equal(t, "ACS3-HMAC-SHA256 Credential=STS.testAccessKeyId,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-security-token;x-acs-signature-nonce;x-acs-version,Signature=16e912b15f4b04a220bf274f3f900e9fddae4d0d4aff74eb4f6fafd0996038d4",
		alicloud.SignV3("POST", "/", q, h, alicloud.EmptyHash, "STS.testAccessKeyId", "testAccessKeySecret"))
	require.True(t, strings.HasSuffix(alicloud.SignV3("POST", "/", map[string]string{}, base(), alicloud.EmptyHash, "testAccessKeyId", "testAccessKeySecret"),
		"Signature=65cee6cd9cacc1ac83f4c5936cb864aafbef8f93023610e2575d3be09397b396"))
}

const alphabet = "abcXYZ019-_.~*  +/:!'()&=%中文ü"

func randValue(r *rand.Rand) string {
	n := r.IntN(12)
	var b strings.Builder
	runes := []rune(alphabet)
	for i := 0; i < n; i++ {
		b.WriteRune(runes[r.IntN(len(runes))])
	}
	return b.String()
}

// TestDifferentialAgainstOfficialSDK signs 1,000 generated requests with the
// project's signer and with the official darabonba-openapi utils, expects
// the same Authorization, then has the sandbox accept each request and
// refuse an altered copy of it.
func TestDifferentialAgainstOfficialSDK(t *testing.T) {
	sbx := camssbx.New(camssbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 1000; i++ {
		query := map[string]string{}
		for _, k := range []string{"CustSpaceId", "IsvCode", "OwnerId", "ResourceOwnerAccount"} {
			if r.IntN(3) > 0 {
				query[k] = randValue(r)
			}
		}
		ak, secret, token := camssbx.DemoAccessKeyID, camssbx.DemoAccessKeySecret, ""
		if i%2 == 1 {
			ak, secret, token = camssbx.DemoSTSKeyID, camssbx.DemoSTSKeySecret, camssbx.DemoSTSToken
		}
		headers := map[string]string{"host": host, "x-acs-action": "QueryChatappBindWaba", "x-acs-version": "2020-06-06",
			"x-acs-date": time.Now().UTC().Format("2006-01-02T15:04:05Z"), "x-acs-signature-nonce": fmt.Sprintf("%032x", r.Uint64()) + fmt.Sprint(i),
			"x-acs-content-sha256": alicloud.EmptyHash}
		if token != "" {
			headers["x-acs-security-token"] = token
		}
		ours := alicloud.SignV3("POST", "/", query, headers, alicloud.EmptyHash, ak, secret)
		dq, dh := map[string]*string{}, map[string]*string{}
		for k, v := range query {
			dq[k] = dara.String(v)
		}
		for k, v := range headers {
			dh[k] = dara.String(v)
		}
		theirs := utils.GetAuthorization(&dara.Request{Method: dara.String("POST"), Pathname: dara.String("/"), Query: dq, Headers: dh},
			dara.String("ACS3-HMAC-SHA256"), dara.String(alicloud.EmptyHash), dara.String(ak), dara.String(secret))
		require.Equal(t, dara.StringValue(theirs), ours, "request %d: %v", i, query)

		// The sandbox accepts the genuine request (or throttles it, never
		// refuses its signature) and refuses an altered copy.
		status, code := send(t, srv.URL, query, headers, ours)
		require.NotEqual(t, "SignatureDoesNotMatch", code, "request %d refused: %v", i, query)
		_ = status
		altered := map[string]string{}
		for k, v := range query {
			altered[k] = v
		}
		altered["CustSpaceId"] = query["CustSpaceId"] + "x"
		h2 := map[string]string{}
		for k, v := range headers {
			h2[k] = v
		}
		h2["x-acs-signature-nonce"] += "-altered"
		if i%3 == 0 {
			_, code = send(t, srv.URL, altered, h2, ours) // altered query
		} else {
			h2["x-acs-date"] = time.Now().UTC().Add(time.Second).Format("2006-01-02T15:04:05Z")
			if h2["x-acs-date"] == headers["x-acs-date"] {
				h2["x-acs-version"] = "2020-06-07"
			}
			_, code = send(t, srv.URL, query, h2, ours) // altered header
		}
		require.Equal(t, "SignatureDoesNotMatch", code, "altered request %d accepted", i)
	}
}

func send(t *testing.T, base string, query, headers map[string]string, auth string) (int, string) {
	t.Helper()
	u := base + "/"
	if len(query) > 0 {
		u += "?" + alicloud.CanonicalQuery(query)
	}
	req, _ := http.NewRequest("POST", u, http.NoBody)
	for k, v := range headers {
		if k != "host" {
			req.Header.Set(k, v)
		}
	}
	req.Header.Set("Authorization", auth)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	code, _ := m["Code"].(string)
	return resp.StatusCode, code
}

func newCAMS(t *testing.T, url string, creds alicloud.Credentials, lim store.Limiter) envelope.Op {
	t.Helper()
	c, err := alicloud.NewClient(alicloud.Options{Endpoint: url, Version: alicloud.CAMSVersion, Product: "cams", HTTP: http.DefaultClient, Limiter: lim, QPS: 10})
	require.NoError(t, err)
	return alicloud.NewCAMS(c, alicloud.StaticSource(creds)).Op()
}

func invoke(t *testing.T, op envelope.Op, body string, timeout time.Duration) (int, map[string]any) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	r := op.Invoke(ctx, &envelope.Input{Body: []byte(body)})
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &m), string(r.Body))
	return r.Status, m
}

var demo = alicloud.Credentials{AccessKeyID: camssbx.DemoAccessKeyID, AccessKeySecret: camssbx.DemoAccessKeySecret}

func TestSuccessPassesEveryFieldThrough(t *testing.T) {
	sbx := camssbx.New(camssbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	for _, creds := range []alicloud.Credentials{demo, {AccessKeyID: camssbx.DemoSTSKeyID, AccessKeySecret: camssbx.DemoSTSKeySecret, SecurityToken: camssbx.DemoSTSToken}} {
		st, m := invoke(t, newCAMS(t, srv.URL, creds, store.NewMemory(store.MemoryOptions{})), `{"custSpaceId":"293483****49493","isvCode":"aksik93kdkkxmwol9****"}`, 5*time.Second)
		require.Equal(t, 200, st, m)
		require.Equal(t, "cams.queryChatappBindWaba:ok", m["errMsg"])
		require.NotEmpty(t, m["requestId"])
		data := m["data"].(map[string]any)
		require.Equal(t, "20393988393993***", data["id"])
		require.Equal(t, "Alibaba", data["name"])
		require.Equal(t, "APPROVED", data["accountReviewStatus"])
		require.Equal(t, "93e6b26e_8a67_4163_a093_ebfe645a66b0", data["messageTemplateNamespace"])
		require.Equal(t, "N", data["isOnBizApp"])
		require.Equal(t, `"start_time":1721952000`, data["primaryBusinessLocation"])
		require.Equal(t, map[string]any{"test": "test", "test2": 1.0}, data["authInternationalRateEligibility"])
		require.Equal(t, map[string]any{"addedBy": "a later CAMS release"}, data["futureField"], "unknown vendor fields pass through")
	}
}

func TestDocumentedErrorCodes(t *testing.T) {
	sbx := camssbx.New(camssbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	for space, want := range map[string]struct {
		code    string
		errCode float64
		status  int
	}{
		camssbx.SpaceUnsubscribed: {"Product.Unsubscript", -1305, 502},
		camssbx.SpaceNoPermission: {"Ram.PermissionDeny", -1305, 502},
		camssbx.SpaceNotOwner:     {"Unknown.ResourceOwnerId", -1305, 502},
		camssbx.SpaceLimited:      {"System.LimitControl", -1201, 429},
	} {
		st, m := invoke(t, newCAMS(t, srv.URL, demo, store.NewMemory(store.MemoryOptions{})), `{"custSpaceId":"`+space+`"}`, 2*time.Second)
		require.Equal(t, want.status, st, space)
		require.Equal(t, want.errCode, m["errCode"], space)
		up := m["upstream"].(map[string]any)
		require.Equal(t, want.code, up["code"])
		require.NotEmpty(t, up["message"])
		require.NotEmpty(t, up["requestId"])
		require.Equal(t, 400.0, up["httpStatus"])
		require.Contains(t, m["errMsg"], want.code)
	}
	st, m := invoke(t, newCAMS(t, srv.URL, alicloud.Credentials{AccessKeyID: "LTAInobody", AccessKeySecret: "x"}, store.NewMemory(store.MemoryOptions{})), `{}`, 2*time.Second)
	// Refused credentials are configuration (TestCredentialsCAMSRefusesAreConfiguration).
	require.Equal(t, 500, st)
	require.Equal(t, float64(envelope.CodeConfig), m["errCode"])
	require.Equal(t, "InvalidAccessKeyId.NotFound", m["upstream"].(map[string]any)["code"])
	_, m = invoke(t, newCAMS(t, srv.URL, alicloud.Credentials{AccessKeyID: camssbx.DemoAccessKeyID, AccessKeySecret: "wrong"}, store.NewMemory(store.MemoryOptions{})), `{}`, 2*time.Second)
	require.Equal(t, float64(envelope.CodeConfig), m["errCode"])
	require.Equal(t, "SignatureDoesNotMatch", m["upstream"].(map[string]any)["code"])
}

// TestAnAnswerWithoutCodeCannotBeRead: every CAMS answer names its Code; a
// 200 without one is -1303 (unreadable), not a refusal with an empty reason.
func TestAnAnswerWithoutCodeCannotBeRead(t *testing.T) {
	for _, body := range []string{`{}`, `null`, `{"RequestId":"r","Data":{}}`} {
		sbx := camssbx.New(camssbx.Options{})
		srv := httptest.NewServer(sbx.Handler())
		sbx.Inject(sandbox.Fault{Path: "/", Kind: sandbox.FaultStatus, Status: 200, Body: body, Times: 1})
		st, m := invoke(t, newCAMS(t, srv.URL, demo, store.NewMemory(store.MemoryOptions{})), `{}`, 2*time.Second)
		srv.Close()
		require.Equal(t, 502, st, body)
		require.Equal(t, -1303.0, m["errCode"], body)
		require.Equal(t, "cams.queryChatappBindWaba:fail cams answered HTTP 200 with a body that could not be read", m["errMsg"], body)
	}
}

// A 429 without an Alibaba error body is throttling, not an unreadable answer.
func TestHTTP429IsThrottled(t *testing.T) {
	sbx := camssbx.New(camssbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	sbx.Inject(sandbox.Fault{Path: "/", Kind: sandbox.FaultStatus, Status: 429, Body: `{}`, Times: 1})
	st, m := invoke(t, newCAMS(t, srv.URL, demo, store.NewMemory(store.MemoryOptions{})), `{}`, 2*time.Second)
	require.Equal(t, 429, st, m)
	require.Equal(t, -1201.0, m["errCode"], m)
	require.Equal(t, 1.0, m["retryAfter"], m)
}

func TestStaleDateAndReusedNonce(t *testing.T) {
	sbx := camssbx.New(camssbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	h := map[string]string{"host": host, "x-acs-action": "QueryChatappBindWaba", "x-acs-version": "2020-06-06",
		"x-acs-date": time.Now().UTC().Add(-16 * time.Minute).Format("2006-01-02T15:04:05Z"), "x-acs-signature-nonce": "n1", "x-acs-content-sha256": alicloud.EmptyHash}
	_, code := send(t, srv.URL, nil, h, alicloud.SignV3("POST", "/", nil, h, alicloud.EmptyHash, demo.AccessKeyID, demo.AccessKeySecret))
	require.Equal(t, "InvalidTimeStamp.Expired", code)
	h["x-acs-date"] = time.Now().UTC().Format("2006-01-02T15:04:05Z")
	auth := alicloud.SignV3("POST", "/", nil, h, alicloud.EmptyHash, demo.AccessKeyID, demo.AccessKeySecret)
	st, _ := send(t, srv.URL, nil, h, auth)
	require.Equal(t, 200, st)
	_, code = send(t, srv.URL, nil, h, auth)
	require.Equal(t, "SignatureNonceUsed", code)
}

func TestFiftyConcurrentCallsStayUnderTenPerSecond(t *testing.T) {
	sbx := camssbx.New(camssbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	op := newCAMS(t, srv.URL, demo, store.NewMemory(store.MemoryOptions{}))
	var wg sync.WaitGroup
	codes := make([]float64, 50)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, m := invoke(t, op, `{"custSpaceId":"space-1"}`, 20*time.Second)
			codes[i] = m["errCode"].(float64)
		}()
	}
	wg.Wait()
	for _, c := range codes {
		require.Equal(t, 0.0, c, "no System.LimitControl reaches a caller whose deadline allows waiting")
	}
	require.LessOrEqual(t, sbx.MaxPerSecond(camssbx.DemoAccessKeyID), 10)
	require.Equal(t, 0, sbx.Calls("error:System.LimitControl"))
}

func TestClientIgnoringTheLimitIsThrottled(t *testing.T) {
	sbx := camssbx.New(camssbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	limited := 0
	for i := 0; i < 25; i++ {
		h := map[string]string{"host": host, "x-acs-action": "QueryChatappBindWaba", "x-acs-version": "2020-06-06",
			"x-acs-date": time.Now().UTC().Format("2006-01-02T15:04:05Z"), "x-acs-signature-nonce": fmt.Sprintf("burst-%d", i), "x-acs-content-sha256": alicloud.EmptyHash}
		_, code := send(t, srv.URL, nil, h, alicloud.SignV3("POST", "/", nil, h, alicloud.EmptyHash, demo.AccessKeyID, demo.AccessKeySecret))
		if code == "System.LimitControl" {
			limited++
		}
	}
	require.Greater(t, limited, 0, "a burst past 10 per second is refused with System.LimitControl")
}

func TestShortDeadlineGetsThrottledNotAHang(t *testing.T) {
	sbx := camssbx.New(camssbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	lim := store.NewMemory(store.MemoryOptions{})
	op := newCAMS(t, srv.URL, demo, lim)
	for i := 0; i < 10; i++ {
		_, m := invoke(t, op, `{}`, 5*time.Second)
		require.Equal(t, 0.0, m["errCode"])
	}
	st, m := invoke(t, op, `{}`, 200*time.Millisecond)
	require.Equal(t, 429, st)
	require.Equal(t, -1201.0, m["errCode"])
	require.Equal(t, 1.0, m["retryAfter"])
}

func TestBadInputNeverSent(t *testing.T) {
	sbx := camssbx.New(camssbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	op := newCAMS(t, srv.URL, demo, store.NewMemory(store.MemoryOptions{}))
	for body, want := range map[string]string{
		`{"custSpaceId":123}`:                   "custSpaceId: expected a string, got number",
		`{"isvCode":["a"]}`:                     "isvCode: expected a string, got array",
		`{"CustSpaceId":"1"}`:                   `did you mean "custSpaceId"?`,
		`{"custSpaceId":"1","custSpaceId":"2"}`: `custSpaceId: duplicate key "custSpaceId"`,
		"{\"isvCode\":\"a\xc3\"}":               "isvCode: not valid UTF-8",
		`{"custSpaceId":"1","extra":true}`:      `extra: unknown field; expected one of "custSpaceId", "isvCode"`,
		`[]`:                                    "must be a JSON object",
	} {
		st, m := invoke(t, op, body, time.Second)
		require.Equal(t, 400, st, body)
		require.Contains(t, m["errMsg"], want, body)
	}
	require.Equal(t, 0, sbx.Calls("http:/"))
}

// The sandbox checks what it receives as CAMS's gateway does: a parameter
// appended twice after signing is a different request (every pair is
// canonicalised), and STS credentials without their token, or with another
// key's, get the codes Alibaba's SDKs know.
func TestSandboxRefusesWhatTheGatewayWould(t *testing.T) {
	sbx := camssbx.New(camssbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	nonce := 0
	headersFor := func(token string) map[string]string {
		nonce++
		h := map[string]string{"host": host, "x-acs-action": "QueryChatappBindWaba", "x-acs-version": "2020-06-06",
			"x-acs-date": time.Now().UTC().Format("2006-01-02T15:04:05Z"), "x-acs-signature-nonce": fmt.Sprintf("nonce-%d", nonce),
			"x-acs-content-sha256": alicloud.EmptyHash}
		if token != "" {
			h["x-acs-security-token"] = token
		}
		return h
	}
	raw := func(rawQuery string, headers map[string]string, auth string) string {
		req, _ := http.NewRequest("POST", srv.URL+"/?"+rawQuery, http.NoBody)
		for k, v := range headers {
			if k != "host" {
				req.Header.Set(k, v)
			}
		}
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		code, _ := m["Code"].(string)
		return code
	}
	q := map[string]string{"CustSpaceId": "293483949493"}
	h := headersFor("")
	auth := alicloud.SignV3("POST", "/", q, h, alicloud.EmptyHash, camssbx.DemoAccessKeyID, camssbx.DemoAccessKeySecret)
	require.Equal(t, "OK", raw(alicloud.CanonicalQuery(q), h, auth), "the genuine request")
	h = headersFor("")
	auth = alicloud.SignV3("POST", "/", q, h, alicloud.EmptyHash, camssbx.DemoAccessKeyID, camssbx.DemoAccessKeySecret)
	require.Equal(t, "SignatureDoesNotMatch", raw(alicloud.CanonicalQuery(q)+"&CustSpaceId=not-owner", h, auth), "a duplicate parameter appended after signing")

	h = headersFor("")
	auth = alicloud.SignV3("POST", "/", q, h, alicloud.EmptyHash, camssbx.DemoSTSKeyID, camssbx.DemoSTSKeySecret)
	require.Equal(t, "MissingSecurityToken", raw(alicloud.CanonicalQuery(q), h, auth))
	h = headersFor("CAIS-someone-elses-token")
	auth = alicloud.SignV3("POST", "/", q, h, alicloud.EmptyHash, camssbx.DemoSTSKeyID, camssbx.DemoSTSKeySecret)
	require.Equal(t, "InvalidSecurityToken.MismatchWithAccessKey", raw(alicloud.CanonicalQuery(q), h, auth))
	h = headersFor(camssbx.DemoSTSToken)
	auth = alicloud.SignV3("POST", "/", q, h, alicloud.EmptyHash, camssbx.DemoSTSKeyID, camssbx.DemoSTSKeySecret)
	require.Equal(t, "OK", raw(alicloud.CanonicalQuery(q), h, auth), "STS with its own token")
}

// Values CAMS documents as valid (any string) reach CAMS through the
// function, signed, and CAMS accepts them: spaces, CJK, ~, *, an empty
// string and a long one.
func TestUnusualValuesReachCAMS(t *testing.T) {
	sbx := camssbx.New(camssbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	op := newCAMS(t, srv.URL, demo, store.NewMemory(store.MemoryOptions{}))
	for i, body := range []string{
		`{"custSpaceId":"客户空间"}`,
		`{"custSpaceId":"cust space 01"}`,
		`{"isvCode":"a~b"}`,
		`{"custSpaceId":"293483****49493","isvCode":"aksik93kdkkxmwol9****"}`,
		`{"custSpaceId":""}`,
		`{"isvCode":"` + strings.Repeat("长", 2000) + `"}`,
		`{"custSpaceId":"a+b&c=d/%20"}`,
	} {
		st, m := invoke(t, op, body, 5*time.Second)
		require.Equal(t, 200, st, "%s: %v", body, m)
		require.Equal(t, 0.0, m["errCode"], body)
		require.Equal(t, i+1, sbx.Calls("QueryChatappBindWaba"), body)
	}
}

// vendorFake answers every request with answer, counting them.
func vendorFake(t *testing.T, answer func(w http.ResponseWriter, n int)) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answer(w, int(n.Add(1)))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// A 5xx with a POP error body is the vendor failing, not refusing: retried,
// then -1302 (retry later), as from the other vendors, never -1305.
func TestServerErrorsStayUnreachableAfterTheRetries(t *testing.T) {
	for _, code := range []string{"ServiceUnavailable", "InternalError"} {
		srv, n := vendorFake(t, func(w http.ResponseWriter, _ int) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(503)
			fmt.Fprintf(w, `{"RequestId":"r-1","HostId":"cams.aliyuncs.com","Code":%q,"Message":"try later"}`, code)
		})
		st, m := invoke(t, newCAMS(t, srv.URL, demo, store.NewMemory(store.MemoryOptions{})), `{}`, 5*time.Second)
		require.Equal(t, 502, st, m)
		require.Equal(t, -1302.0, m["errCode"], m)
		require.Equal(t, code, m["upstream"].(map[string]any)["code"])
		require.Equal(t, int32(3), n.Load())
	}
}

// A 5xx with Retry-After, with or without a POP body, is waited out when the
// deadline allows; a longer one is answered at once with its wait.
func TestA503sRetryAfterIsHonoured(t *testing.T) {
	for _, body := range []string{`{"RequestId":"r-1","Code":"ServiceUnavailable","Message":"try later"}`, `<html>busy</html>`} {
		srv, n := vendorFake(t, func(w http.ResponseWriter, i int) {
			if i > 1 {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, `{"RequestId":"r-2","Code":"OK","Data":{"Id":"waba-1"}}`)
				return
			}
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(503)
			fmt.Fprint(w, body)
		})
		start := time.Now()
		st, m := invoke(t, newCAMS(t, srv.URL, demo, store.NewMemory(store.MemoryOptions{})), `{}`, 5*time.Second)
		require.Equal(t, 200, st, m)
		require.GreaterOrEqual(t, time.Since(start), time.Second)
		require.Equal(t, int32(2), n.Load())

		srv, n = vendorFake(t, func(w http.ResponseWriter, _ int) {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(503)
			fmt.Fprint(w, body)
		})
		st, m = invoke(t, newCAMS(t, srv.URL, demo, store.NewMemory(store.MemoryOptions{})), `{}`, 5*time.Second)
		require.Equal(t, 502, st, m)
		require.Equal(t, -1302.0, m["errCode"], m)
		require.Equal(t, 30.0, m["retryAfter"], m)
		require.Equal(t, int32(1), n.Load(), "30 s do not fit a 5 s deadline: no retry")
	}
}

// The gateway's throttle names how long its window has left (TimeLeft): a
// wait the deadline allows is waited out once, then retried; one it does
// not is answered at once with that wait, not after hammering the gateway.
func TestThrottleWaitsWhatTheGatewaySays(t *testing.T) {
	throttle := func(w http.ResponseWriter, timeLeftMS int) {
		w.Header().Set("x-ratelimit-user-api", fmt.Sprintf("Limit:10,Remain:0,TimeLeft:%d,Reset:1", timeLeftMS))
		w.Header().Set("x-ratelimit-user", "Limit:100,Remain:3,TimeLeft:50")
		w.WriteHeader(400)
		fmt.Fprint(w, `{"RequestId":"r-2","Code":"Throttling.User","Message":"Request was denied due to user flow control."}`)
	}
	srv, n := vendorFake(t, func(w http.ResponseWriter, _ int) { throttle(w, 30000) })
	start := time.Now()
	st, m := invoke(t, newCAMS(t, srv.URL, demo, store.NewMemory(store.MemoryOptions{})), `{}`, 5*time.Second)
	require.Equal(t, 429, st)
	require.Equal(t, -1201.0, m["errCode"])
	require.Equal(t, 30.0, m["retryAfter"], "the gateway's TimeLeft, in seconds")
	require.Equal(t, int32(1), n.Load(), "a 30 s window is not retried within a 5 s deadline")
	require.Less(t, time.Since(start), 2*time.Second)

	srv, n = vendorFake(t, func(w http.ResponseWriter, i int) {
		if i == 1 {
			throttle(w, 600)
			return
		}
		fmt.Fprint(w, `{"RequestId":"r-3","Code":"OK","Data":{"Id":"waba-1"}}`)
	})
	start = time.Now()
	_, m = invoke(t, newCAMS(t, srv.URL, demo, store.NewMemory(store.MemoryOptions{})), `{}`, 5*time.Second)
	require.Equal(t, 0.0, m["errCode"], m)
	require.Equal(t, int32(2), n.Load())
	require.GreaterOrEqual(t, time.Since(start), 600*time.Millisecond, "the retry waited the window out")
}

// A retry the deadline leaves no room to finish (each attempt takes 1 s;
// after two, about 0.8 s are left) is not started: the caller hears the
// vendor's own answer, not a timeout that hides it.
func TestARetryThatCannotFinishIsNotStarted(t *testing.T) {
	srv, n := vendorFake(t, func(w http.ResponseWriter, _ int) {
		time.Sleep(time.Second)
		w.WriteHeader(400)
		fmt.Fprint(w, `{"RequestId":"r-4","Code":"Throttling.User","Message":"Request was denied due to user flow control."}`)
	})
	st, m := invoke(t, newCAMS(t, srv.URL, demo, store.NewMemory(store.MemoryOptions{})), `{}`, 3*time.Second)
	require.Equal(t, 429, st, m)
	require.Equal(t, -1201.0, m["errCode"], m)
	require.Equal(t, "Throttling.User", m["upstream"].(map[string]any)["code"])
	require.Equal(t, int32(2), n.Load())
}

// A documented Data field of another kind than CAMS documents (seed 002)
// is an answer the function cannot read: passed through, an Id sent as a
// number broke the published output schema, the Go client refused the
// answer and the Node one typed a number as a string (an outside tester).
// A null field is left out; a field CAMS adds later passes as it is.
func TestADocumentedFieldOfAnotherKindCannotBeRead(t *testing.T) {
	answer := func(data string) string {
		return `{"Code":"OK","Success":true,"Message":"SUCCESS","RequestId":"R4","Data":` + data + `}`
	}
	for _, tc := range []struct{ data, reason string }{
		{`{"Id":123}`, "Data.Id is a number, not a string as CAMS documents it"},
		{`{"Id":"1","AuthInternationalRateEligibility":"x"}`, "Data.AuthInternationalRateEligibility is a string, not an object as CAMS documents it"},
		{`{"IsOnBizApp":false}`, "Data.IsOnBizApp is a boolean, not a string"},
		{`{"Name":["a"]}`, "Data.Name is an array, not a string"},
	} {
		sbx := camssbx.New(camssbx.Options{})
		srv := httptest.NewServer(sbx.Handler())
		sbx.Inject(sandbox.Fault{Path: "/", Kind: sandbox.FaultStatus, Status: 200, Body: answer(tc.data), Times: 1})
		st, m := invoke(t, newCAMS(t, srv.URL, demo, store.NewMemory(store.MemoryOptions{})), `{}`, 2*time.Second)
		srv.Close()
		require.Equal(t, 502, st, tc.data)
		require.Equal(t, -1303.0, m["errCode"], tc.data)
		require.Contains(t, m["errMsg"], tc.reason)
		require.Equal(t, "R4", m["upstream"].(map[string]any)["requestId"], "the request id to quote to Alibaba")
	}

	sbx := camssbx.New(camssbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	sbx.Inject(sandbox.Fault{Path: "/", Kind: sandbox.FaultStatus, Status: 200, Times: 1,
		Body: answer(`{"Id":"7","Name":null,"AuthInternationalRateEligibility":null,"LaterField":5}`)})
	st, m := invoke(t, newCAMS(t, srv.URL, demo, store.NewMemory(store.MemoryOptions{})), `{}`, 2*time.Second)
	require.Equal(t, 200, st, m)
	require.Equal(t, map[string]any{"id": "7", "laterField": 5.0}, m["data"], "nulls left out, a later field passed through")
}

// Two keys that name one field: CAMS's PascalCase spelling is kept, every
// time (the other spelling won as the map's random order fell: an outside
// re-tester), and the one dropped is not judged.
func TestOfTwoSpellingsCAMSsIsKept(t *testing.T) {
	sbx := camssbx.New(camssbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	for _, tc := range []struct{ data, want string }{
		{`{"id":"1","Id":"2"}`, `{"id":"2"}`},
		{`{"Id":"2","id":"1"}`, `{"id":"2"}`},
		{`{"id":5,"Id":"x"}`, `{"id":"x"}`},
		{`{"FooBar":1,"fooBar":2}`, `{"fooBar":1}`},
		// Keys that differ only in case are one field too: a case-blind
		// decoder (Go's encoding/json) read businessid into businessId.
		{`{"BusinessId":"p","businessid":"q"}`, `{"businessId":"p"}`},
		{`{"BusinessId":"p","businessid":5}`, `{"businessId":"p"}`},
		{`{"Id":"A","iD":"Z","ID":"Y"}`, `{"id":"A"}`},
		// A value over a null, whatever the spelling.
		{`{"Id":null,"id":"B"}`, `{"id":"B"}`},
	} {
		for range 10 {
			sbx.Inject(sandbox.Fault{Path: "/", Kind: sandbox.FaultStatus, Status: 200, Times: 1,
				Body: `{"Code":"OK","Success":true,"RequestId":"R5","Data":` + tc.data + `}`})
			st, m := invoke(t, newCAMS(t, srv.URL, demo, store.NewMemory(store.MemoryOptions{})), `{}`, 2*time.Second)
			require.Equal(t, 200, st, m)
			got, err := json.Marshal(m["data"])
			require.NoError(t, err)
			require.JSONEq(t, tc.want, string(got), tc.data)
		}
	}
}
