package policy

// Spec is the spec of an AccessPolicy document. It decodes strictly from
// YAML and round-trips through JSON, which is how the server stores it.
// Durations and rates are kept as the strings the user wrote; [Compile]
// parses them and reports errors at their position.
type Spec struct {
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Subjects are SPIFFE ID patterns ("spiffe://writ.local/agent/*"),
	// identity label selectors ("label:team=mail,env=prod"), users
	// ("user:alice", "user:*") and groups ("group:finance").
	Subjects []string `yaml:"subjects" json:"subjects"`
	// Labels declares the user-defined flow labels this document uses, in
	// addition to the built-in ones.
	Labels []string   `yaml:"labels,omitempty" json:"labels,omitempty"`
	Rules  []RuleSpec `yaml:"rules" json:"rules"`
	// Mode is "enforce" (the default, also when empty) or "observe". An
	// observed policy decides nothing: every request is still decided by
	// the enforcing policies, and the decision the set would make with
	// the observed policies in force is recorded beside it (would_deny,
	// would_hold, would_allow). `writ policy promote` makes it enforcing.
	Mode string `yaml:"mode,omitempty" json:"mode,omitempty"`
	// Replaces names the enforcing policies an observed policy stands in
	// for: while observing, they are left out of the observed set, and
	// promoting deletes them. Only with mode observe.
	Replaces []string `yaml:"replaces,omitempty" json:"replaces,omitempty"`
}

// Policy modes.
const (
	ModeEnforce = "enforce"
	ModeObserve = "observe"
)

// RuleSpec is one rule of a policy.
type RuleSpec struct {
	Name        string       `yaml:"name" json:"name"`
	Description string       `yaml:"description,omitempty" json:"description,omitempty"`
	Effect      string       `yaml:"effect" json:"effect"` // allow, deny or escalate
	Targets     []TargetSpec `yaml:"targets" json:"targets"`
	// When is a CEL expression over the request; the rule applies only
	// when it is true.
	When     string        `yaml:"when,omitempty" json:"when,omitempty"`
	Flow     *FlowSpec     `yaml:"flow,omitempty" json:"flow,omitempty"`
	Rate     *RateSpec     `yaml:"rate,omitempty" json:"rate,omitempty"`
	Approval *ApprovalSpec `yaml:"approval,omitempty" json:"approval,omitempty"`
	// MaxTTL caps the lifetime of credentials minted under this rule,
	// e.g. "10m".
	MaxTTL string `yaml:"max_ttl,omitempty" json:"max_ttl,omitempty"`
	// Budget caps the calls one task may make under this rule. An allow
	// rule with a budget grants HTTP and MCP calls only within a task, so
	// that calls without one cannot escape the cap; on a rule for opening
	// tasks (or minting a task's tokens) it becomes the task's budget.
	Budget int `yaml:"budget,omitempty" json:"budget,omitempty"`
}

// TargetSpec names what a rule covers: exactly one of HTTP, MCP, Token and
// Task, optionally narrowed to targets carrying one of Labels; or Labels
// alone for any HTTP or MCP target carrying one of them.
type TargetSpec struct {
	HTTP   *HTTPTarget  `yaml:"http,omitempty" json:"http,omitempty"`
	MCP    *MCPTarget   `yaml:"mcp,omitempty" json:"mcp,omitempty"`
	Token  *TokenTarget `yaml:"token,omitempty" json:"token,omitempty"`
	Task   *TaskTarget  `yaml:"task,omitempty" json:"task,omitempty"`
	Labels []string     `yaml:"labels,omitempty" json:"labels,omitempty"`
}

// HTTPTarget is an HTTP service by name. Omitted methods or paths mean
// all of them.
type HTTPTarget struct {
	Service string   `yaml:"service" json:"service"`
	Methods []string `yaml:"methods,omitempty" json:"methods,omitempty"`
	Paths   []string `yaml:"paths,omitempty" json:"paths,omitempty"`
}

// MCPTarget is an MCP server by name and the tools, resources and prompts
// covered. With none of the three, everything on the server is covered;
// with some, only those kinds.
type MCPTarget struct {
	Server    string   `yaml:"server" json:"server"`
	Tools     []string `yaml:"tools,omitempty" json:"tools,omitempty"`
	Resources []string `yaml:"resources,omitempty" json:"resources,omitempty"`
	Prompts   []string `yaml:"prompts,omitempty" json:"prompts,omitempty"`
}

// TokenTarget is the minting of access tokens. An allow rule covers a
// request whose audience matches and whose scopes are all listed; a deny
// rule matches a request asking for any listed scope. Omitted lists mean
// any.
type TokenTarget struct {
	Audiences []string `yaml:"audiences,omitempty" json:"audiences,omitempty"`
	Scopes    []string `yaml:"scopes,omitempty" json:"scopes,omitempty"`
}

// TaskTarget is the opening of tasks with the given purposes (globs).
type TaskTarget struct {
	Purposes []string `yaml:"purposes,omitempty" json:"purposes,omitempty"`
}

// FlowSpec makes a rule apply only once the request's task has touched
// flow labels: all of TouchedAll and at least one of TouchedAny.
type FlowSpec struct {
	TouchedAll []string `yaml:"touched_all,omitempty" json:"touched_all,omitempty"`
	TouchedAny []string `yaml:"touched_any,omitempty" json:"touched_any,omitempty"`
}

// RateSpec limits calls under a rule: Limit is "CALLS/WINDOW" (e.g.
// "60/1m"); Per is subject (the default: every instance of the calling
// workload shares one window, so starting new processes does not reset
// it), instance or task. Rules of one policy that name the same Bucket
// share one window (so "60 calls a minute" can span several rules);
// without a bucket each rule has its own.
type RateSpec struct {
	Limit  string `yaml:"limit" json:"limit"`
	Per    string `yaml:"per,omitempty" json:"per,omitempty"`
	Bucket string `yaml:"bucket,omitempty" json:"bucket,omitempty"`
}

// ApprovalSpec says a human must approve. Required defaults to true when
// the block is present. Approvers are "user:NAME" or "group:NAME" (empty:
// any approver); Timeout defaults to 15m.
type ApprovalSpec struct {
	Required  *bool    `yaml:"required,omitempty" json:"required,omitempty"`
	Approvers []string `yaml:"approvers,omitempty" json:"approvers,omitempty"`
	Timeout   string   `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}
