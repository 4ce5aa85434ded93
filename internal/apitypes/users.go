package apitypes

import "time"

// User is a named human account of the console (`writ user list`). No
// password hash is ever served.
type User struct {
	Name string `json:"name"`
	// Role is viewer, approver or admin.
	Role string `json:"role"`
	// Source is local (a password kept by writ) or oidc (an external
	// identity provider).
	Source string `json:"source"`
	// Groups are the groups the human is in (group:NAME approvers), in
	// byte order; names compare exactly (case-sensitive).
	Groups    []string  `json:"groups,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	LastLogin time.Time `json:"last_login,omitzero"`
}

// UserRequest is the body of POST /v1/users (`writ user add`) and, with
// only Password, of PUT /v1/users/{name}/password (`writ user passwd`).
type UserRequest struct {
	Name     string   `json:"name,omitempty"`
	Role     string   `json:"role,omitempty"`
	Groups   []string `json:"groups,omitempty"`
	Password string   `json:"password"`
}

// GroupsRequest is the body of PATCH /v1/users/{name}/groups (`writ user
// groups`): with Set the account's groups become Set (an empty list
// clears them); then Add are added and Remove removed.
type GroupsRequest struct {
	Set    *[]string `json:"set,omitempty"`
	Add    []string  `json:"add,omitempty"`
	Remove []string  `json:"remove,omitempty"`
}
