package apitypes

// Posture is GET /v1/posture (`writ posture`): findings most severe and
// widest blast radius first. See docs/posture.md.
type Posture struct {
	Findings []PostureFinding `json:"findings"`
	// Checks lists every check that ran.
	Checks []string `json:"checks"`
}

// PostureFinding is one finding. Nodes are lineage graph node ids;
// Reaches the services and MCP servers the principal or credential can
// reach; BlastRadius the ranking score (reaches plus ten per crown jewel).
type PostureFinding struct {
	ID          string   `json:"id"`
	Check       string   `json:"check"`
	Severity    string   `json:"severity"`
	Title       string   `json:"title"`
	Evidence    []string `json:"evidence"`
	Nodes       []string `json:"nodes"`
	Reaches     []string `json:"reaches"`
	CrownJewels []string `json:"crown_jewels,omitempty"`
	BlastRadius int      `json:"blast_radius"`
	Fix         string   `json:"fix"`
}

// TierReport is GET /v1/tier (`writ tier`): each requirement of the
// zero-trust tiers for agents evaluated on this deployment. Verdict is
// met, partial, not_met or not_measured. See docs/tier.md.
type TierReport struct {
	// Reached is the highest tier all of whose rows are met: Foundation,
	// Enterprise, Advanced or none.
	Reached string    `json:"reached"`
	Rows    []TierRow `json:"rows"`
}

// TierRow is one requirement.
type TierRow struct {
	Tier        string `json:"tier"`
	ID          string `json:"id"`
	Requirement string `json:"requirement"`
	Verdict     string `json:"verdict"`
	Evidence    string `json:"evidence"`
	ToMeet      string `json:"to_meet"`
}
