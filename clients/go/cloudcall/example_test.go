package cloudcall_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/clients/go/cloudcall"
)

// The README's first Go call (it did not compile: "declared and not used").
// It compiles here; it needs a running `cloudcall local`, so it has no
// Output and is not run.
func Example() {
	o := cloudcall.Options{BaseURL: "http://127.0.0.1:9000"}
	if key := os.Getenv("CLOUDCALL_KEY"); key != "" {
		o.KeyID, o.Secret = "backend", key // unset: unsigned calls, for functions that allow anonymous ones (make run)
	}
	cc, err := cloudcall.New(o)
	if err != nil {
		log.Fatal(err)
	}
	out, err := cc.OpenAPI.Logistics.GetQuota(context.Background(), cloudcall.GetQuotaInput{DeliveryID: "YTO", BizID: "xyz"})
	var ce *cloudcall.Error
	if errors.As(err, &ce) && ce.ErrCode == -1001 {
		log.Fatalf("fix %s: %s", ce.Field, ce.ErrMsg)
	} else if err != nil {
		log.Fatal(err)
	}
	fmt.Println(out.QuotaNum) // 210
}

// The README shows Example's body as it is here.
func TestTheReadmeShowsTheExample(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	require.NoError(t, err)
	m := regexp.MustCompile("<!-- readme:go-first-call[^\n]*-->\n```go\n([\\s\\S]*?)```").FindSubmatch(readme)
	require.NotNil(t, m, "the README's Go block is marked")
	src, err := os.ReadFile("example_test.go")
	require.NoError(t, err)
	body := regexp.MustCompile(`(?s)func Example\(\) \{\n(.*?)\n\}\n`).FindSubmatch(src)
	require.NotNil(t, body)
	var lines []string
	for _, l := range strings.Split(string(body[1]), "\n") {
		lines = append(lines, strings.TrimPrefix(l, "\t"))
	}
	require.Equal(t, strings.Join(lines, "\n")+"\n", string(m[1]))
}
