package apitypes

import "fmt"

// Error is the JSON error document of every non-2xx admin API answer:
//
//	{"code": "not_found", "error": "entry \"x\": not found"}
//
// Status is the HTTP status; it is not part of the document.
type Error struct {
	Status int    `json:"-"`
	Code   string `json:"code"`  // stable machine-readable code, one of the Code constants
	Msg    string `json:"error"` // user-safe message naming the input and what to do
}

func (e *Error) Error() string { return e.Msg }

// Errorf builds an *Error.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Error codes.
const (
	CodeBadRequest   = "bad_request"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict"
	CodeInternal     = "internal"
)

// Deleted is the answer of a DELETE that has nothing else to say:
// {"deleted": "KIND/NAME"}.
type Deleted struct {
	Deleted string `json:"deleted"`
}
