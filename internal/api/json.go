package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/writ-dev/writ/internal/apitypes"
)

// MaxBody is the largest JSON request body accepted.
const MaxBody = 4 << 20

// errorf builds an API error for the client.
func errorf(status int, code, format string, args ...any) *apitypes.Error {
	return apitypes.Errorf(status, code, format, args...)
}

func badRequest(format string, args ...any) *apitypes.Error {
	return apitypes.Errorf(http.StatusBadRequest, apitypes.CodeBadRequest, format, args...)
}

func notFound(format string, args ...any) *apitypes.Error {
	return apitypes.Errorf(http.StatusNotFound, apitypes.CodeNotFound, format, args...)
}

func conflict(format string, args ...any) *apitypes.Error {
	return apitypes.Errorf(http.StatusConflict, apitypes.CodeConflict, format, args...)
}

// WriteJSON writes v as indented JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// WriteError writes err as an [apitypes.Error] document. An error that is
// not one becomes a 500 whose message does not leak the internal cause;
// the caller is expected to have logged it.
func WriteError(w http.ResponseWriter, err error) {
	var e *apitypes.Error
	if !errors.As(err, &e) {
		e = &apitypes.Error{Status: http.StatusInternalServerError, Code: apitypes.CodeInternal, Msg: "internal error; see the server log"}
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
			return apitypes.Errorf(http.StatusRequestEntityTooLarge, apitypes.CodeBadRequest, "request body is over %d bytes", MaxBody)
		}
		return badRequest("decode request body: %v", err)
	}
	if dec.More() {
		return badRequest("decode request body: trailing data after the JSON value")
	}
	return nil
}

// isClientError reports whether err is meant for the client (and need
// not be logged).
func isClientError(err error) bool {
	var e *apitypes.Error
	return errors.As(err, &e) && e.Status < 500
}
