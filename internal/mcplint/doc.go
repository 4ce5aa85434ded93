// Package mcplint lints MCP tool descriptors for poisoning: text in a
// tool's name, description, schemas or annotations that is aimed at the
// model rather than at the person who approves the tool.
//
// The input is the result of tools/list ([Parse]); [Linter.Lint] returns a
// [Report] of findings, each with a rule id, a severity, the tool, the field
// (a JSON pointer inside the tool) and the evidence's byte span in that
// field. The rule families are:
//
//   - hidden-instructions: <IMPORTANT>-style blocks and HTML comments,
//     concealment from the user ("do not tell the user"), overrides
//     ("ignore previous instructions"), role-play and system-prompt
//     language, steering of every reply or of confirmations;
//   - shadowing: text that changes how the model uses other tools or
//     servers ("when using the send_email tool, always ...", "instead of
//     the X tool");
//   - invisible-characters: zero-width and bidirectional characters, Unicode
//     tag characters (decoded in the evidence), ANSI escapes and other
//     control characters, long runs of blanks;
//   - exfiltration: credential files (~/.ssh, .env, mcp.json, id_rsa, ...),
//     sending data to an outside address, asking for the conversation or
//     credentials, URLs built to carry data (URLs alone are low);
//   - secret: credentials embedded in the text, found by
//     [github.com/writ-dev/writ/internal/secrets];
//   - suspicious-schema: parameters named or described as the
//     conversation, the system prompt, credentials or file contents.
//
// A tool with a high finding is flagged: the CLI exits 1, and the MCP
// gateway quarantines it at pin time. [Run] is the whole of `writ mcp lint
// FILE` (text, JSON or SARIF 2.1.0 output). Precision and recall on a
// corpus of real tool descriptors and a poisoned one are in
// docs/mcp-lint.md; the corpora are in testdata/.
//
// The rules are regular expressions gated by keywords (one Aho-Corasick
// pass per tool enables the rules whose keywords occur) and character
// scans; a lint of a typical tool takes tens of microseconds. They find
// known phrasings: a poisoning written to avoid them (a paraphrase, another
// language) gets through, which is why pinning and policy, not the lint,
// are the gateway's controls.
package mcplint
