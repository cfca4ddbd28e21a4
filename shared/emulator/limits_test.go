package emulator_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
)

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
