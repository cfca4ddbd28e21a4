package emulator_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
)

// TestTheFCDoorTakesWhatTheInstanceTakes: under --platform aws the instance
// polls Lambda's runtime API, which never hands a function more than 6 MB;
// a 32 MB call through the FC door got the instance killed for memory
// (outside tester). It is refused at the door instead, and nothing starts.
// Under --platform fc the FC door takes its 32 MB.
func TestTheFCDoorTakesWhatTheInstanceTakes(t *testing.T) {
	payload := `{"pad":"` + strings.Repeat("a", emulator.LambdaMaxPayload) + `"}` // over 6 MB, an event the fixtures take
	for _, tc := range []struct {
		platform runtimeapi.Platform
		status   int
		contains string
	}{
		{runtimeapi.Lambda, 413, fmt.Sprintf(`"Code":"PayloadTooLarge","Message":"payload is over the %d-byte limit of a synchronous invocation here`, emulator.LambdaMaxPayload)},
		{runtimeapi.FC, 200, `"hello":"fc"`},
	} {
		t.Run(string(tc.platform), func(t *testing.T) {
			e, srv := descriptorEmu(t, tc.platform, 0)
			resp, body := do(t, "POST", srv.URL+"/2023-03-30/functions/hello/invocations", payload, nil)
			require.Equal(t, tc.status, resp.StatusCode, string(body))
			require.Contains(t, string(body), tc.contains)
			if tc.status == 413 {
				require.Empty(t, e.Instances("hello"), "a refused call starts no instance")
			}
		})
	}
}

// TestAWSRoutesOnlyTheExactPath: template.yaml routes POST /<function> and
// nothing under it, so a deployed HTTP API answers a sub-path 404
// {"message":"Not Found"}; the emulator ran the function (outside tester),
// and code that worked locally failed deployed. FC's trigger is the
// function's whole domain: there sub-paths reach the function.
func TestAWSRoutesOnlyTheExactPath(t *testing.T) {
	subPaths := []string{"/hello/extra", "/hello/a%2Fb", "/hello/"}
	t.Run("aws", func(t *testing.T) {
		e, srv := descriptorEmu(t, runtimeapi.Lambda, 0)
		for _, path := range subPaths {
			for _, method := range []string{"POST", "GET"} {
				resp, body := do(t, method, srv.URL+path, `{}`, nil)
				require.Equal(t, 404, resp.StatusCode, method+" "+path)
				require.Equal(t, `{"message":"Not Found"}`, string(body), method+" "+path)
				require.NotEmpty(t, resp.Header.Get("Apigw-Requestid"), method+" "+path)
			}
		}
		require.Empty(t, e.Instances("hello"), "no route, no instance")
		resp, body := do(t, "POST", srv.URL+"/hello", `{}`, nil)
		require.Equal(t, 201, resp.StatusCode, string(body))
	})
	t.Run("fc", func(t *testing.T) {
		_, srv := descriptorEmu(t, runtimeapi.FC, 0)
		for _, path := range subPaths {
			resp, body := do(t, "POST", srv.URL+path, `{}`, nil)
			require.Equal(t, 201, resp.StatusCode, path)
			require.Contains(t, string(body), `"path":"`+path+`"`)
		}
	})
}
