package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// Errors a call may match with errors.Is, by the HTTP status the server
// answered. The error's message stays the server's own (it names the
// input and what to do); *Error carries the status and code.
var (
	// ErrInvalid: the request is malformed or names something invalid
	// (400, 413).
	ErrInvalid = errors.New("invalid request")
	// ErrUnauthorized: the credential is missing or wrong (401).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: the caller may not do this (403).
	ErrForbidden = errors.New("forbidden")
	// ErrNotFound: what the request names does not exist (404).
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request conflicts with the current state: already
	// exists, already decided, already closed (409).
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: the server cannot answer now; retry (503).
	ErrUnavailable = errors.New("unavailable")
	// ErrServer: the server failed (other 5xx); see its log.
	ErrServer = errors.New("server error")
)

// Error is a non-2xx answer of the admin API.
type Error struct {
	Status int    // HTTP status
	Code   string // the server's stable code, e.g. "not_found"
	Msg    string // the server's message
}

func (e *Error) Error() string { return e.Msg }

// Is matches the sentinel errors of this package by status.
func (e *Error) Is(target error) bool {
	return target != nil && target == statusError(e.Status)
}

func statusError(status int) error {
	switch status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return ErrInvalid
	case http.StatusUnauthorized:
		return ErrUnauthorized
	case http.StatusForbidden:
		return ErrForbidden
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusConflict, http.StatusPreconditionFailed:
		return ErrConflict
	case http.StatusServiceUnavailable:
		return ErrUnavailable
	}
	if status >= 500 {
		return ErrServer
	}
	return nil
}

// readError turns a non-2xx response into an *Error.
func readError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var doc struct {
		Code string `json:"code"`
		Msg  string `json:"error"`
	}
	if json.Unmarshal(body, &doc) == nil && doc.Msg != "" {
		return &Error{Status: resp.StatusCode, Code: doc.Code, Msg: doc.Msg}
	}
	return &Error{Status: resp.StatusCode, Code: http.StatusText(resp.StatusCode), Msg: fmt.Sprintf("server answered %s", resp.Status)}
}
