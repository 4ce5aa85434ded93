// Package httpapi holds the conventions of writ's JSON admin API, shared by
// the server's handlers and the client: how a response and an error are
// written, how a request body is decoded (strictly, with a size limit), and
// the error document both sides agree on.
package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// MaxBody is the largest JSON request body accepted by default.
const MaxBody = 4 << 20

// Error is the JSON error document of every non-2xx admin API response.
type Error struct {
	Status int    `json:"-"`
	Code   string `json:"code"`  // stable machine-readable code, e.g. "not_found"
	Msg    string `json:"error"` // user-safe message naming the input and what to do
}

func (e *Error) Error() string { return e.Msg }

// Errorf builds an *Error.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Common error codes.
const (
	CodeBadRequest   = "bad_request"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict"
	CodeInternal     = "internal"
)

// WriteJSON writes v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// WriteError writes err as an Error document. An error that is not an
// *Error becomes a 500 whose message does not leak the internal cause; the
// caller is expected to have logged it.
func WriteError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Msg: "internal error; see the server log"}
	}
	WriteJSON(w, e.Status, e)
}

// DecodeJSON decodes the request body into v strictly: unknown fields are
// errors, and bodies over MaxBody are refused.
func DecodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return Errorf(http.StatusRequestEntityTooLarge, CodeBadRequest, "request body is over %d bytes", MaxBody)
		}
		return Errorf(http.StatusBadRequest, CodeBadRequest, "decode request body: %v", err)
	}
	if dec.More() {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "decode request body: trailing data after the JSON value")
	}
	return nil
}

// ReadError turns a non-2xx response into an *Error, for clients.
func ReadError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e Error
	if json.Unmarshal(body, &e) == nil && e.Msg != "" {
		e.Status = resp.StatusCode
		return &e
	}
	return &Error{Status: resp.StatusCode, Code: http.StatusText(resp.StatusCode), Msg: fmt.Sprintf("server answered %s", resp.Status)}
}
