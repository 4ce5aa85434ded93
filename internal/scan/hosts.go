package scan

import (
	"bytes"
	"regexp"
	"slices"
	"strings"
)

// hostWindow is how many lines before and after a secret are searched for
// host names; maxHosts bounds how many are kept.
const (
	hostWindow = 3
	maxHosts   = 8
)

// hostRe matches a URL's host (after an optional userinfo) or the value of
// a host setting (host: x, DB_HOST=x, "hostname": "x").
var hostRe = regexp.MustCompile(`(?i)(?:\b[a-z][a-z0-9+.-]{1,15}://(?:[^@/\s"'<>]{1,256}@)?([a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?)*)|\b[a-z0-9_]*host(?:name)?["']?\s*[:=]\s*["']?([a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?)+))`)

// hostsNear returns the host names within hostWindow lines of offset at
// in data, lower-cased, sorted, at most maxHosts.
func hostsNear(data []byte, at int) []string {
	at = min(max(at, 0), len(data))
	start := at
	for range hostWindow + 1 {
		i := bytes.LastIndexByte(data[:start], '\n')
		if i < 0 {
			start = 0
			break
		}
		start = i
	}
	end := at
	for range hostWindow + 1 {
		i := bytes.IndexByte(data[end:], '\n')
		if i < 0 {
			end = len(data)
			break
		}
		end += i + 1
	}
	var hosts []string
	for _, m := range hostRe.FindAllSubmatch(data[start:end], -1) {
		h := m[1]
		if len(h) == 0 {
			h = m[2]
		}
		if len(h) == 0 || len(h) > 253 {
			continue
		}
		hosts = append(hosts, strings.ToLower(string(h)))
	}
	slices.Sort(hosts)
	hosts = slices.Compact(hosts)
	if len(hosts) > maxHosts {
		hosts = hosts[:maxHosts]
	}
	return hosts
}
