package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// APIError is the body of every error answer, in OpenAI's shape:
// {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}, with the allowed values
// of the faulty input as an extension when it picks from a set.
type APIError struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the error object of an APIError.
type ErrorDetail struct {
	Message string   `json:"message"`
	Type    string   `json:"type"`  // invalid_request_error, authentication_error, permission_error, rate_limit_error, server_error
	Param   *string  `json:"param"` // the request field at fault, or null
	Code    *string  `json:"code"`  // a machine-readable reason, or null
	Allowed []string `json:"allowed,omitempty"`
}

// errorType is OpenAI's error type for an HTTP status.
func errorType(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusForbidden:
		return "permission_error"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// writeJSON encodes v first and only then sends status with the body: a value that cannot be
// encoded (e.g. a non-finite number) is answered with a 500 error, never a success status with
// an empty body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		data, _ = json.Marshal(APIError{ErrorDetail{Message: fmt.Sprintf("encoding the answer: %v", err),
			Type: errorType(status), Code: strPtr("encoding_failed")}})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}

// writeError answers err: a *BadRequest with its status, anything else with a 500.
func writeError(w http.ResponseWriter, err error) {
	var br *BadRequest
	if !errors.As(err, &br) {
		br = &BadRequest{Status: http.StatusInternalServerError, Msg: err.Error(), Code: "internal_error"}
	}
	if br.Status == http.StatusTooManyRequests || br.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, br.Status, APIError{ErrorDetail{Message: br.Msg, Type: errorType(br.Status),
		Param: strPtr(br.Param), Code: strPtr(br.Code), Allowed: br.Allowed}})
}
