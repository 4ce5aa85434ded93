package mcplint

import (
	"regexp"
	"sort"
	"strings"
)

// Severity ranks a finding: any high finding fails the lint.
type Severity string

// The severities.
const (
	High   Severity = "high"
	Medium Severity = "medium"
	Low    Severity = "low"
)

// Rule families: the first part of every rule id.
const (
	FamilyInstructions = "hidden-instructions"
	FamilyShadowing    = "shadowing"
	FamilyInvisible    = "invisible-characters"
	FamilyExfiltration = "exfiltration"
	FamilySecret       = "secret"
	FamilySchema       = "suspicious-schema"
)

// Rule describes one check.
type Rule struct {
	ID          string   `json:"id"`
	Family      string   `json:"family"`
	Severity    Severity `json:"severity"`
	Description string   `json:"description"`
}

// textRule is a regular expression over a tool's text, run only when one
// of its keywords (lower case) occurs in the text.
type textRule struct {
	Rule
	keywords []string
	re       *regexp.Regexp
	// only restricts the rule to some texts (nil: all but property names).
	only func(text) bool
}

func schemaDescOnly(t text) bool { return t.schemaDesc }

// Expressions shared by the rules.
const (
	// the user, as a conversation's human is named in poisoned text
	user = `(?:the |this |your )?(?:user|human|person|customer)s?`
	// a model, as poisoned text addresses it
	model = `(?:the |an? )?(?:assistant|ai|llm|model|agent|claude|gpt|chatgpt|copilot|cursor)s?`
	// a verb of hiding from the user
	tell = `(?:tell|inform|notify|mention|reveal|disclose|show|alert|warn|ask|let)`
	// a verb of sending
	send = `(?:send|post|upload|forward|e-?mail|transmit|exfiltrate|submit|bcc|cc|copy|report|relay|share|leak|push)`
	// things an exfiltration takes
	loot = `(?:conversation|chat(?: history| log)?|(?:conversation|chat|message) history|transcript|api keys?|credentials?|passwords?|secrets?|cookies?|environment variables|env vars|seed phrase|private keys?|access tokens?|email address(?:es)?|phone numbers?|billing address)`
)

func textRules() []textRule {
	conceal := Rule{"hidden-instructions/conceal", FamilyInstructions, High,
		"Tells the model to keep something from the user."}
	role := Rule{"hidden-instructions/role", FamilyInstructions, High,
		"Role-play or system-prompt language: addresses the model as its operator would."}
	return []textRule{
		// Hidden instructions aimed at the model.
		{Rule{"hidden-instructions/tag-block", FamilyInstructions, High,
			"An <IMPORTANT>-, <system>- or [INST]-style block or an HTML comment: a place to hide instructions for the model from a user who reads the tool list."},
			[]string{"<", "[inst", "{{sys"},
			regexp.MustCompile(`(?i)<\s*/?\s*(?:important|system|sys|instructions?|secret|hidden|admin|assistant|tool_description|tool_instructions|context|prompt)\b[^>]{0,40}>|\[/?inst\]|<<\s*/?sys\s*>>|<!--|\{\{\s*system\b`), nil},
		{conceal,
			[]string{"user", "human", "person", "customer", "secret", "confidential", "hidden", "silently", "quietly", "covertly", "disclose", "mention", "reveal", "summari", "prompted", "asked", "told"},
			regexp.MustCompile(`(?i)\b(?:do not|don't|never|must not|should not|shall not|without)\s+(?:\w+ing\s+)?` + tell + `\w*\s+(?:it\s+|this\s+|that\s+|anything\s+)?(?:to\s+)?` + user + `|` + user + `\s+(?:must|should|shall|does|do|need)\s*(?:not|n't)\s+(?:\w+\s+){0,2}(?:know|see|be told|be asked|be prompted|notice|find out)|\b(?:silently|secretly|covertly|quietly)\s+(?:\w+\s+){0,2}(?:call|run|send|include|add|change|forward|execute|use|append|pass|put)|\b(?:do not|don't|never)\s+(?:disclose|reveal|mention|show|summari[sz]e)\b|(?:prefers?|wants?) not to be (?:prompted|asked|told)|not (?:be )?(?:prompted|asked) about it`), nil},
		{conceal, []string{"secret", "confidential", "hidden"},
			regexp.MustCompile(`(?i)\b(?:keep|is|are)\s+(?:this|it|these)?\s*(?:[a-z']+\s+){0,3}(?:secret|confidential|hidden)\b`), nil},
		{Rule{"hidden-instructions/override", FamilyInstructions, High,
			"Tries to override the model's instructions or the user's requests."},
			[]string{"ignore", "disregard", "previous", "precedence", "priority", "override", "revoke", "no longer", "developer mode", "restriction", "conflict", "without question", "from now on", "exactly"},
			regexp.MustCompile(`(?i)\b(?:ignore|disregard|forget|override)\s+(?:all\s+|any\s+)?(?:the\s+|your\s+|of\s+the\s+)?(?:previous|prior|above|earlier|preceding|user'?s?|other|original)\b|\b(?:instructions|guidelines|rules|restrictions|policies)\s+(?:\w+\s+){0,2}(?:no longer apply|are revoked|do not apply)|\bprevious guidelines are revoked|takes? precedence over|higher[- ]priority|(?:developer|god|jailbreak|dan) mode|no restrictions|unrestricted|(?:must|should|shall) be (?:followed|executed|obeyed|done) (?:exactly|without question|immediately)|without question|even if (?:it |they |this )?conflicts?|from now on|must not refuse|this tool overrides`), nil},
		{role,
			[]string{"you are", "act as", "pretend", "system", " ai", "ai-", "assistant", "llm", "model", "agent", "claude", "gpt", "copilot", "cursor", "hidden ", "secret ", "important instruction"},
			regexp.MustCompile(`(?i)\byou are (?:now|a helpful|an? unrestricted)\b|\bact as (?:if|an?|the)\b|\bpretend (?:to be|that|you)\b|\bsystem[ -](?:prompt|message|instruction|level instruction|override)s?\b|\b` + model + `-only\b|\bas an? (?:ai|language model|llm)\b|\b(?:hidden|secret)\s+(?:rule|instruction|note|directive)s?\b|\bimportant instructions? for\b|\bthe (?:assistant|model|ai|llm) (?:must|should|shall|is required)\b|\byou are required to\b`), nil},
		{role, []string{"system:", "system :", "assistant:", "assistant :", "ai:", "llm:"},
			regexp.MustCompile(`(?i)\b(?:system|assistant|ai|llm)[ \t]*:\s`), nil},
		{role, []string{" ai", "ai ", "assistant", "llm", "model", "agent", "claude", "gpt", "copilot", "cursor"},
			regexp.MustCompile(`(?i)\b(?:note|tip|instruction|rule|hint|reminder|message)s?\s+(?:to|for)\s+` + model + `\b`), nil},
		{Rule{"hidden-instructions/behaviour", FamilyInstructions, High,
			"Steers the model's behaviour beyond this tool: every reply, the rest of the conversation, asking no confirmation, pre-approved actions."},
			[]string{"reply", "answer", "respon", "message you", "rest of th", "remember this", "start of every", "permission", "confirmation", "approval", "approved", "authori", "important", "whatever the user", "mandatory", "twice", "whenever the user", "apply these rules"},
			regexp.MustCompile(`(?i)\b(?:every|each|any) (?:reply|answer|response|message you (?:give|send|write))\b|\b(?:after|before|once) (?:you )?(?:answer|respond|reply)(?:ing)?\b|\bbefore answering\b|\bfor the rest of (?:the|this) (?:conversation|session|chat)\b|\bremember this\b|\bat the start of every\b|\b(?:do not|don't|never|without) (?:ask(?:ing)?|request(?:ing)?) (?:the user )?(?:for )?(?:permission|confirmation|approval)\b|\b(?:has|have) (?:already )?(?:approved|pre-?authori[sz]ed|authori[sz]ed)\b|\bpre-?authori[sz]ed\b|\b(?:very\s+)+important\b|\bwhatever the user asks\b|\bit is mandatory\b|\b(?:always )?call (?:this tool|it) twice\b|\bwhenever the user (?:shares|asks|types|says)\b|\bapply these rules to every\b`), nil},

		// Shadowing: steering calls to other tools or servers.
		{Rule{"shadowing/other-tool", FamilyShadowing, High,
			"Changes how the model uses other tools or servers (shadowing)."},
			[]string{"tool", "server", "when using", "when calling", "whenever you call", "instead of"},
			regexp.MustCompile(`(?i)\b(?:when|whenever|if|before|after)\s+(?:you\s+)?(?:are\s+)?(?:using|use|calling|call|invoking|invoke|running|run)\s+(?:the\s+|any\s+)?(?:[\w.-]+\s+){0,4}?(?:tool|server|function)s?\b.{0,160}?\b(?:always|must|also|first|instead|replace|change|add|append|prefix|bcc|cc|include|send|set)\b|\b(?:when|if|whenever)\s+(?:the\s+)?[\w.-]+\s+tool\s+(?:of\s+[\w.-]+\s+)?(?:is|gets)\s+(?:called|used|invoked)|\binstead of (?:the |using (?:the )?)?[a-z0-9]+[_.-][\w.-]+ (?:tool|server|function)\b|\b(?:do not|don't|never) (?:use|call) (?:the )?[a-z0-9]+[_.-][\w.-]+ (?:tool|function)\b|\b(?:before|prior to) (?:calling|using|invoking) any other tool\b|\bfor all tools\b|\b(?:other|all) tools (?:on|of|from) this server\b|\btools? (?:of|from) (?:the |other )?[\w.-]+ servers?\b|\bside effect on\b|\bthis tool (?:overrides|replaces|shadows|supersedes|changes) (?:the )?(?:behaviou?r|[\w.-]+ tool)|\bwhichever tool or server\b|\bwith any tool\b|\bnames? and arguments of the tool\b|\bother tools? you have access to\b|\broute every\b`), nil},

		// Exfiltration cues.
		{Rule{"exfiltration/sensitive-file", FamilyExfiltration, High,
			"Names a file that holds credentials or private data (SSH keys, .env, cloud and MCP client configs, shell history)."},
			[]string{"ssh", "id_rsa", "id_ed25519", "id_ecdsa", ".env", "mcp.json", "claude_desktop_config", ".aws", "credentials", ".kube", ".npmrc", ".netrc", ".git-credentials", ".pgpass", "/etc/passwd", "/etc/shadow", "_history", ".docker/config", ".gnupg", "wallet", "seed", "keychain", ".pypirc", "settings.json"},
			regexp.MustCompile(`(?i)~?/?\.ssh\b|\bid_(?:rsa|ed25519|ecdsa|dsa)\b|(?:^|[\s'"\x60(/])\.env(?:\.[a-z]+)?\b|\bmcp\.json\b|\bclaude_desktop_config\.json\b|\.aws/(?:credentials|config)\b|\.kube/config\b|\.npmrc\b|\.netrc\b|\.git-credentials\b|\.pgpass\b|/etc/(?:passwd|shadow)\b|\.(?:bash|zsh|sh|python|psql|mysql)_history\b|\.docker/config\.json\b|\.gnupg\b|\bseed phrase\b|\bwallet/seed\b|\.pypirc\b|\.vscode/settings\.json\b|\bkeychain\b`), nil},
		{Rule{"exfiltration/send-to", FamilyExfiltration, High,
			"Tells the model to send data to an outside address (a URL, an e-mail address, a phone number)."},
			[]string{"http", "@", "+", "channel", "remote"},
			regexp.MustCompile(`(?i)\b` + send + `\w*\b.{0,120}?\bto\s+(?:https?://|[\w.+-]+@[\w-]+\.[\w.-]+|\+?\d[\d -]{7,}\d|channel\s+\w+|the remote)|\b(?:to|into|invite|bcc|cc)\s+[\w.+-]+@[\w-]+\.[\w.-]+|\b(?:post|fetch|get|call|open|visit|navigate to)\s+(?:the\s+\w+\s+)?(?:and\s+\w+\s+)?(?:to\s+)?https?://[^\s]*(?:\?|=)`), nil},
		{Rule{"exfiltration/data", FamilyExfiltration, High,
			"Tells the model to send, copy or include private data: the conversation, credentials, environment variables, file contents."},
			[]string{"conversation", "chat", "history", "transcript", "api key", "credential", "password", "secret", "cookie", "environment variable", "env var", "seed phrase", "private key", "access token", "email address", "phone number", "billing address", "thread", "context", "everything the user", "aws_secret", "github_token", "openai_api", "anthropic_api", "with the request"},
			regexp.MustCompile(`(?i)\b(?:` + send + `|attach|include|put|paste|pass|append|add|collect)\w*\s+(?:\w+\s+){0,6}?(?:the |all |any |every |your |their |its |whole |entire |full )*(?:` + loot + `)\b.{0,80}?\b(?:to|in|into|with|as|field|argument|param(?:eter)?)\b|\b(?:full|entire|whole) (?:conversation|chat|thread|context)\b|\beverything the user (?:said|typed|wrote)\b|\b(?:aws_secret_access_key|github_token|openai_api_key|anthropic_api_key)\b|\bcredentials or tokens\b|\bsend it with the request\b`), nil},
		{Rule{"exfiltration/url-with-data", FamilyExfiltration, High,
			"A markdown image or link whose URL is to carry data, or a URL to a bare IP address: ways to leak data by rendering or fetching."},
			[]string{"http"},
			regexp.MustCompile(`(?i)!\[[^\]]*\]\(\s*https?://[^)\s]*\?[^)\s]*\)|https?://(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?(?:/|\b)|https?://[^\s"'<>]*[?&]\w+=(?:USER|DATA|[A-Z_]{3,})\b`), nil},
		{Rule{"exfiltration/url", FamilyExfiltration, Low,
			"A URL in the tool's text. Most are documentation links; listed so that a reviewer sees where a description points."},
			[]string{"http"},
			regexp.MustCompile(`(?i)https?://[^\s"'<>)\]]+`), nil},

		// Parameter descriptions that ask for what a tool should not get.
		{Rule{"suspicious-schema/parameter-asks", FamilySchema, High,
			"A parameter's description asks for the conversation, the system prompt, the model's instructions, credentials or the contents of files."},
			[]string{"conversation", "chat", "message", "system", "instruction", "contents", "cookie", "password", "history", "everything", "information you have"},
			regexp.MustCompile(`(?i)\b(?:full|entire|whole)?\s*(?:conversation|chat)(?:\s+(?:so far|history|log|transcript))\b|\b(?:all\s+)?previous messages\b|\bsystem (?:prompt|message)\b|\b(?:your|assistant|the assistant'?s?|hidden) (?:instructions|system message)\b|\bcontents of (?:every|all|the user'?s|any)\b|\bfile contents\b|\bsession cookies\b|\b(?:account|user'?s?) password\b|\bbash_history\b|\bany additional information you have\b|\bverbatim\b`), schemaDescOnly},
	}
}

// sensitiveParams are parameter names (lower case, without _ - . and
// spaces) that ask for what a tool should not need: the conversation, the
// model's instructions, credentials, file contents.
var sensitiveParams = map[string]Severity{
	"conversation": High, "conversationhistory": High, "chathistory": High, "chatlog": High,
	"previousmessages": High, "allmessages": High, "transcript": Medium, "history": Medium,
	"systemprompt": High, "systemmessage": High, "instructions": Medium, "assistantinstructions": High,
	"sidenote": High, "context": Medium, "notes": Low, "debug": Low,
	"password": High, "passwd": High, "userpassword": High, "accountpassword": High,
	"secret": High, "clientsecret": High, "apikey": High, "apitoken": High, "accesstoken": High, "token": Medium,
	"accesskey": High, "secretaccesskey": High, "awssecretaccesskey": High, "awsaccesskey": High,
	"privatekey": High, "sshkey": High, "sshprivatekey": High, "credentials": High, "credential": High,
	"cookie": High, "cookies": High, "sessioncookie": High, "sessiontoken": High,
	"seed": High, "seedphrase": High, "mnemonic": High,
	"filecontents": High, "envvars": High, "environment": Medium,
}

// paramKey normalises a parameter name for sensitiveParams.
func paramKey(name string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(name) {
		if c != '_' && c != '-' && c != '.' && c != ' ' {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// The rules the lint applies outside the text table.
var (
	ruleSensitiveParam = Rule{"suspicious-schema/sensitive-parameter", FamilySchema, High,
		"A parameter named for the conversation, the model's instructions, credentials or file contents: what a tool should not need and a poisoned tool asks for."}
	ruleInvisible = Rule{"invisible-characters/hidden", FamilyInvisible, High,
		"Characters a reader does not see: zero-width, bidirectional overrides, Unicode tag characters (ASCII smuggling), variation selectors used to hide bytes."}
	ruleControl = Rule{"invisible-characters/control", FamilyInvisible, High,
		"ANSI escape sequences and other control characters, which a terminal interprets to hide or rewrite text."}
	rulePadding = Rule{"invisible-characters/padding", FamilyInvisible, High,
		"A long run of blank characters that pushes the rest of the text out of a reviewer's view."}
	ruleSecret = Rule{"secret/embedded", FamilySecret, High,
		"A credential embedded in the tool's text (found by the shared secret detector)."}
)

// Rules lists every rule of the lint, sorted by id.
func Rules() []Rule {
	var out []Rule
	seen := map[string]bool{}
	for _, r := range textRules() {
		if !seen[r.ID] {
			seen[r.ID] = true
			out = append(out, r.Rule)
		}
	}
	out = append(out, ruleSensitiveParam, ruleInvisible, ruleControl, rulePadding, ruleSecret)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
