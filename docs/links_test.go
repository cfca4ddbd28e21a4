// Package docs_test checks the documentation: every relative link in
// README.md and docs/*.md resolves to a file of the repository and, when it
// names an anchor, to a heading of that file.
package docs_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/require"
)

var (
	inlineLink = regexp.MustCompile(`!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	refLink    = regexp.MustCompile(`(?m)^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$`)
	codeSpan   = regexp.MustCompile("`[^`\n]*`")
	heading    = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
	scheme     = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
)

// moduleRoot is the directory holding go.mod above this package.
func moduleRoot(t *testing.T) string {
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, parent, dir, "no go.mod above the test")
		dir = parent
	}
}

// prose drops fenced code blocks and code spans: links inside them are
// examples, not links.
func prose(md string) string { return codeSpan.ReplaceAllString(unfenced(md), "") }

// unfenced blanks the lines of fenced code blocks.
func unfenced(md string) string {
	var out []string
	fenced := false
	for _, l := range strings.Split(md, "\n") {
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "```") || strings.HasPrefix(t, "~~~") {
			fenced = !fenced
			out = append(out, "")
			continue
		}
		if fenced {
			out = append(out, "")
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// anchors are the GitHub heading anchors of a Markdown file: lower case,
// punctuation dropped, spaces as hyphens, repeats numbered -1, -2, ...
func anchors(md string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, l := range strings.Split(unfenced(md), "\n") {
		m := heading.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		var b strings.Builder
		for _, r := range strings.ToLower(m[1]) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		slug := b.String()
		if n := seen[slug]; n > 0 {
			out[fmt.Sprintf("%s-%d", slug, n)] = true
		} else {
			out[slug] = true
		}
		seen[slug]++
	}
	return out
}

// brokenLinks lists every relative link of the given Markdown files (paths
// relative to root) that does not resolve inside root.
func brokenLinks(root string, files []string) ([]string, int, error) {
	var broken []string
	checked := 0
	for _, f := range files {
		raw, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			return nil, 0, err
		}
		text := prose(string(raw))
		var targets []string
		for _, m := range inlineLink.FindAllStringSubmatch(text, -1) {
			targets = append(targets, m[1])
		}
		for _, m := range refLink.FindAllStringSubmatch(text, -1) {
			targets = append(targets, m[1])
		}
		for _, target := range targets {
			if scheme.MatchString(target) || strings.HasPrefix(target, "//") {
				continue // absolute: not ours to check offline
			}
			checked++
			path, frag, _ := strings.Cut(target, "#")
			dest := filepath.Join(root, f) // a bare #anchor points into the same file
			if path != "" {
				dest = filepath.Join(root, filepath.Dir(f), filepath.FromSlash(path))
			}
			rel, err := filepath.Rel(root, dest)
			if err != nil || strings.HasPrefix(rel, "..") {
				broken = append(broken, fmt.Sprintf("%s: %s points outside the repository", f, target))
				continue
			}
			st, err := os.Stat(dest)
			if err != nil {
				broken = append(broken, fmt.Sprintf("%s: %s does not exist", f, target))
				continue
			}
			if frag == "" || st.IsDir() || !strings.HasSuffix(dest, ".md") {
				continue
			}
			md, err := os.ReadFile(dest)
			if err != nil {
				return nil, 0, err
			}
			if !anchors(string(md))[strings.ToLower(frag)] {
				broken = append(broken, fmt.Sprintf("%s: %s names no heading of %s", f, target, rel))
			}
		}
	}
	return broken, checked, nil
}

// docFiles are README.md and docs/*.md.
func docFiles(t *testing.T, root string) []string {
	files := []string{"README.md"}
	more, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	require.NoError(t, err)
	for _, m := range more {
		rel, err := filepath.Rel(root, m)
		require.NoError(t, err)
		files = append(files, rel)
	}
	return files
}

func TestEveryRelativeLinkResolves(t *testing.T) {
	root := moduleRoot(t)
	files := docFiles(t, root)
	broken, checked, err := brokenLinks(root, files)
	require.NoError(t, err)
	require.Empty(t, broken)
	t.Logf("%d relative links in %d files resolve", checked, len(files))
}

// The checker bites: missing files, missing anchors and links out of the
// repository are reported; absolute URLs, code and good links are not.
func TestBrokenLinksAreFound(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "docs"), 0o755))
	write := func(name, body string) {
		require.NoError(t, os.WriteFile(filepath.Join(root, name), []byte(body), 0o644))
	}
	write("README.md", strings.Join([]string{
		"# cloudcall",
		"[ok](docs/operate.md#alarms) [ok2](docs/operate.md#which-store-each-state-class-needs)",
		"[same file](#cloudcall) [web](https://example.com/x) `[code](nowhere.md)`",
		"```", "[in a block](nowhere.md)", "```",
		"[gone](docs/missing.md) [bad anchor](docs/operate.md#no-such) [out](../secret.md)",
		"[ref]: docs/also-missing.md",
	}, "\n"))
	write("docs/operate.md", "# Operate\n## Alarms\n## Which store each state class needs\n[back](../README.md#cloudcall)\n")
	broken, checked, err := brokenLinks(root, []string{"README.md", "docs/operate.md"})
	require.NoError(t, err)
	require.Equal(t, []string{
		"README.md: docs/missing.md does not exist",
		"README.md: docs/operate.md#no-such names no heading of docs/operate.md",
		"README.md: ../secret.md points outside the repository",
		"README.md: docs/also-missing.md does not exist",
	}, broken)
	require.Equal(t, 8, checked)
}

func TestAnchors(t *testing.T) {
	a := anchors("# The envelope\n## Error codes of the bundle\n## Deploy (Serverless Devs and AWS SAM)\n## Logs\n## Logs\n```\n# not a heading\n```\n## `cloudcall local`, `make run`\n")
	for _, want := range []string{"the-envelope", "error-codes-of-the-bundle", "deploy-serverless-devs-and-aws-sam", "logs", "logs-1", "cloudcall-local-make-run"} {
		require.True(t, a[want], want)
	}
	require.False(t, a["not-a-heading"])
}
