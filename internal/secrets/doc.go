// Package secrets finds credentials in bytes: the one secret detector that
// writ's MCP gateway uses to redact tool results, that the MCP tool lint
// ([github.com/writ-dev/writ/internal/mcplint]) uses to flag secrets in tool
// descriptors, and that the static scanner is to use for files and git
// history.
//
// # Rules
//
// The rules are gitleaks' default rule set (gitleaks [GitleaksVersion],
// config/gitleaks.toml, MIT licence; about 220 provider rules: AWS, GCP,
// Azure AD, GitHub, GitLab, Slack, Stripe, OpenAI, Anthropic, private keys
// in PEM blocks, JWTs, a generic "key = value" rule with an entropy floor,
// and many more) plus writ's own rules in the same format
// (rules/writ.toml) for what gitleaks does not cover: passwords inside
// connection URIs (postgres://user:pass@host, mongodb+srv://, redis://, …),
// bearer tokens outside curl commands, HTTP Basic credentials, password
// assignments whose values gitleaks' generic rule does not accept, AWS
// secret access keys, Azure storage account keys and GCP service-account
// key ids.
//
// The rule file is used, not the gitleaks Go packages: importing its config
// package brings viper and its tree (about a dozen modules: hcl, afero,
// fsnotify, properties, mapstructure, …) and process-wide state (viper's
// global instance, a global logger, a global counter of config extension),
// and its detector reports lines and columns but not byte spans, which
// redaction needs. This package has its own engine with gitleaks'
// semantics: a case-insensitive keyword prefilter (one Aho-Corasick pass
// over the input enables only the rules whose keywords occur), each enabled
// rule's regular expression, the secret taken from the rule's secret group
// (or its first non-empty group), the rule's Shannon-entropy floor, and the
// global and per-rule allowlists (regexes against the secret, the match or
// the line; stopwords). Rules that need a file path (gitleaks' path rules,
// such as "a .p12 file" or "a password in a .tf file") are not run: a
// detector sees bytes, not files. The global allowlists' paths (lockfiles,
// vendored trees, images) are offered to scanners of files by
// [Detector.PathAllowed].
//
// One difference from gitleaks is deliberate, for speed: a rule runs only
// near its keywords, so a match must hold one of its rule's keywords
// (gitleaks runs an enabled rule over the whole input). Rules whose every
// match starts at a keyword (the template "[\w.-]{0,50}?(?:keyword)…" and
// literal prefixes such as ghp_ or -----BEGIN; 196 of 224) run anchored at
// each keyword occurrence; the others run on windows around their keywords
// as wide as their longest match (a repeat without bound counts as 8 KiB).
//
// Documentation examples are not reported: a value that contains the
// upper-case word EXAMPLE (AWS's published AKIAIOSFODNN7EXAMPLE and
// wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY), placeholder passwords
// (password, changeme, ${VAR}, <token>, ***) and low-entropy values.
// UUIDs, hex digests and similar identifiers are not secrets by themselves;
// gitleaks' generic rule finds them only after a word such as "token" or
// "secret", as it does any high-entropy value there.
//
// # Findings
//
// A [Finding] names the rule, its severity, the byte span of the secret in
// the input and its line and column, and a fingerprint: hex HMAC-SHA256 of
// the value under a key the caller provides ([Config.FingerprintKey]), so
// that findings can be compared across scans and with the broker's values
// without any output holding or confirming the secret. A Finding never
// holds the value.
//
// [Detector.Redact] replaces each secret by "[REDACTED:rule-id]" (and
// other occurrences of a found value); [Detector.RedactJSON] does the same
// inside the strings of a JSON document, as MCP tool results are, and
// returns valid JSON. Redacting twice changes nothing.
package secrets
