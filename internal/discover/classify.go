package discover

import (
	"math"
	"path"
	"slices"
	"strings"
)

// Signals are what [Classify] looks at for one process.
type Signals struct {
	Exe  string   // /proc/PID/exe
	Argv []string // the command line (unredacted: Classify keeps no argument it is not asked to)
	// EnvNames are the names of the process's environment variables.
	EnvNames []string
	// Modules are the paths of the files the process has mapped or open
	// (shared objects, native extensions).
	Modules []string
}

// Verdict is what [Classify] decided.
type Verdict struct {
	Kind       Kind
	Name       string
	Confidence float64
	Evidence   []string
}

// agentCLIs are the command names of agent CLIs.
var agentCLIs = []string{
	"claude", "codex", "aider", "gemini", "cursor-agent", "goose", "opencode",
	"amp", "crush", "qwen", "copilot", "cline", "kiro-cli", "q", "openhands", "plandex",
}

// interpreters run scripts and packages that may be agents or MCP servers.
var interpreters = []string{"node", "nodejs", "bun", "deno", "python", "uv", "uvx", "npx", "pnpm", "pnpx", "bunx", "yarn", "pipx"}

// llmEnv are environment variables that LLM SDKs read their key from.
var llmEnv = []string{
	"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "MISTRAL_API_KEY",
	"GROQ_API_KEY", "COHERE_API_KEY", "TOGETHER_API_KEY", "OPENROUTER_API_KEY", "AZURE_OPENAI_API_KEY",
	"DEEPSEEK_API_KEY", "XAI_API_KEY", "HF_TOKEN", "HUGGINGFACEHUB_API_TOKEN",
}

// sdkModules are path fragments of agent and LLM SDKs as they appear in
// mapped or open files and in script paths: Python packages (native
// extensions under site-packages) and Node packages (under node_modules).
var sdkModules = []string{
	"/openai/", "/anthropic/", "/langchain", "/langgraph", "/llama_index/", "/crewai/", "/autogen",
	"/litellm/", "/tiktoken", "/google/genai/", "/mistralai/", "/pydantic_ai/", "/smolagents/",
	"/@anthropic-ai/", "/@openai/", "/@langchain/", "/@ai-sdk/", "/@google/genai/", "/@modelcontextprotocol/sdk/",
	"/mcp/server/", "/fastmcp/",
}

// Classify decides whether a process is an agent, an MCP server or
// neither, from its signals. The rules, strongest first:
//
//   - the executable's or script's name is a known agent CLI (0.9);
//   - an argument names an MCP server package ("@modelcontextprotocol/server-*",
//     "mcp-server-*", "*-mcp-server", "*-mcp") run by an interpreter or
//     package runner, or the executable is named so (0.9);
//   - the process maps or opens a module of an agent or LLM SDK (0.7), or
//     runs a script from one (0.7);
//   - an interpreter whose environment holds an LLM provider's key (0.5);
//   - any process whose environment holds one (0.3).
//
// Several signals add evidence; the confidence is the strongest one's,
// raised by 0.05 for each further independent signal, at most 0.99.
func Classify(s Signals) Verdict {
	var v Verdict
	add := func(k Kind, name string, conf float64, ev string) {
		if conf > v.Confidence {
			if v.Confidence > 0 {
				conf = min(math.Round((conf+0.05)*100)/100, 0.99)
			}
			v.Kind, v.Name, v.Confidence = k, name, conf
		} else {
			v.Confidence = min(math.Round((v.Confidence+0.05)*100)/100, 0.99)
		}
		v.Evidence = append(v.Evidence, ev)
	}
	exeBase := path.Base(strings.TrimSuffix(s.Exe, " (deleted)"))
	var argv0 string
	if len(s.Argv) > 0 {
		argv0 = path.Base(s.Argv[0])
	}
	interp := slices.Contains(interpreters, trimVersion(exeBase)) || slices.Contains(interpreters, trimVersion(argv0))

	// The command: the executable, argv[0], and for an interpreter the
	// first argument that is not an option (the script or package).
	cmds := []struct{ name, what string }{{exeBase, "executable " + quote(exeBase)}, {argv0, "argv[0] " + quote(argv0)}}
	if interp {
		for _, a := range s.Argv[min(1, len(s.Argv)):] {
			if strings.HasPrefix(a, "-") {
				continue
			}
			cmds = append(cmds, struct{ name, what string }{path.Base(a), "script " + quote(a)})
			break
		}
	}
	for _, c := range cmds {
		n := strings.TrimSuffix(strings.TrimSuffix(c.name, ".js"), ".mjs")
		if slices.Contains(agentCLIs, n) {
			add(KindAgent, n, 0.9, c.what+" is a known agent CLI")
			break
		}
	}
	for i, a := range s.Argv {
		if i == 0 && !strings.Contains(a, "mcp") {
			continue
		}
		if name, ok := mcpPackage(a); ok && (interp || i == 0) {
			add(KindMCPServer, name, 0.9, "argument "+quote(a)+" names an MCP server package")
			break
		}
	}
	if name, ok := mcpPackage(exeBase); ok && v.Kind != KindMCPServer {
		add(KindMCPServer, name, 0.9, "executable "+quote(exeBase)+" is named as an MCP server")
	}
	for _, m := range s.Modules {
		if frag, ok := sdkFragment(m); ok {
			add(KindAgent, strings.Trim(frag, "/"), 0.7, "maps or opens "+quote(m)+" (an agent or LLM SDK)")
			break
		}
	}
	if interp {
		for _, a := range s.Argv[1:] {
			if frag, ok := sdkFragment(a); ok {
				add(KindAgent, strings.Trim(frag, "/"), 0.7, "runs "+quote(a)+" from an agent or LLM SDK")
				break
			}
		}
	}
	for _, e := range s.EnvNames {
		if slices.Contains(llmEnv, e) {
			conf := 0.3
			if interp {
				conf = 0.5
			}
			add(KindAgent, "", conf, "environment holds "+e+" (an LLM provider's key)")
			break
		}
	}
	if v.Kind == "" {
		v.Kind = KindProcess
	}
	if v.Name == "" && v.Kind != KindProcess {
		v.Name = exeBase
		if interp && len(cmds) > 2 {
			v.Name = cmds[2].name
		}
	}
	return v
}

// mcpPackage reports whether a names an MCP server package and returns
// the package's name.
func mcpPackage(a string) (string, bool) {
	if i := strings.Index(a, "@modelcontextprotocol/server-"); i >= 0 {
		name := a[i:]
		if j := strings.IndexAny(name[len("@modelcontextprotocol/"):], "/@ "); j >= 0 {
			name = name[:len("@modelcontextprotocol/")+j]
		}
		return name, true
	}
	base := path.Base(a)
	if j := strings.LastIndexByte(base, '@'); j > 0 {
		base = base[:j] // a version: mcp-server-git@1.2
	}
	base = strings.TrimSuffix(strings.TrimSuffix(base, ".js"), ".py")
	switch {
	case strings.HasPrefix(base, "mcp-server-"), strings.HasSuffix(base, "-mcp-server"), strings.HasSuffix(base, "-mcp") && len(base) > 4,
		strings.HasPrefix(base, "server-") && strings.Contains(a, "modelcontextprotocol"):
		return base, true
	}
	return "", false
}

func sdkFragment(p string) (string, bool) {
	for _, f := range sdkModules {
		if strings.Contains(p, f) {
			return f, true
		}
	}
	return "", false
}

// trimVersion turns "python3.12" into "python3" and "node22" into "node".
func trimVersion(s string) string {
	return strings.TrimRight(s, "0123456789.")
}

func quote(s string) string {
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return `"` + s + `"`
}
