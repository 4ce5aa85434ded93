package scan

import (
	"path"
	"strings"
)

// Kind is what a file is, judged by its path.
type Kind string

// The kinds of file the scanner knows.
const (
	KindGeneric    Kind = "file"
	KindGitHubCI   Kind = "github-actions"
	KindGitLabCI   Kind = "gitlab-ci"
	KindJenkins    Kind = "jenkinsfile"
	KindCircleCI   Kind = "circleci"
	KindDockerfile Kind = "dockerfile"
	KindCompose    Kind = "compose"
	KindKubernetes Kind = "kubernetes-secret"
	KindYAML       Kind = "yaml"
	KindHelmValues Kind = "helm-values"
	KindDotenv     Kind = "dotenv"
	KindMCPConfig  Kind = "mcp-config"
)

// KindOf returns the kind of the file at p (slash-separated).
func KindOf(p string) Kind {
	base := path.Base(p)
	lower := strings.ToLower(base)
	dir := path.Dir(p)
	isYAML := strings.HasSuffix(lower, ".yml") || strings.HasSuffix(lower, ".yaml")
	switch {
	case isYAML && (strings.HasSuffix(dir, ".github/workflows") || dir == ".github/workflows"):
		return KindGitHubCI
	case lower == ".gitlab-ci.yml" || lower == ".gitlab-ci.yaml":
		return KindGitLabCI
	case base == "Jenkinsfile" || strings.HasSuffix(lower, ".jenkinsfile"):
		return KindJenkins
	case isYAML && (dir == ".circleci" || strings.HasSuffix(dir, "/.circleci")):
		return KindCircleCI
	case lower == "dockerfile" || strings.HasPrefix(lower, "dockerfile.") || strings.HasSuffix(lower, ".dockerfile") || lower == "containerfile":
		return KindDockerfile
	case isYAML && (strings.HasPrefix(lower, "docker-compose") || strings.HasPrefix(lower, "compose.") || strings.HasPrefix(lower, "compose-")):
		return KindCompose
	case isYAML && strings.HasPrefix(lower, "values"):
		return KindHelmValues
	case lower == ".env" || strings.HasPrefix(lower, ".env.") || strings.HasSuffix(lower, ".env"):
		return KindDotenv
	case isMCPConfig(dir, lower):
		return KindMCPConfig
	case isYAML:
		// Kubernetes manifests have no fixed name: the scanner reads each
		// YAML document's kind, and a Secret's findings get KindKubernetes.
		return KindYAML
	}
	return KindGeneric
}

// isMCPConfig recognises the configuration files of MCP clients: Claude
// Desktop, Claude Code (.mcp.json, .claude.json), Cursor, VS Code, Windsurf,
// Cline and the generic mcp.json.
func isMCPConfig(dir, lower string) bool {
	switch lower {
	case "claude_desktop_config.json", ".mcp.json", "mcp.json", ".claude.json",
		"mcp_config.json", "cline_mcp_settings.json", "mcp_settings.json":
		return true
	}
	return false
}
