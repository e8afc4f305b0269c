package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// GenerateRequest is the body of POST /v1/generate.
type GenerateRequest struct {
	Prompt   string `json:"prompt"`
	Method   string `json:"method"`
	Hypernet string `json:"hypernet,omitempty"` // needed only when several hypernetworks are loaded
	N        *int   `json:"n,omitempty"`        // images (default 1)
	Seed     *int64 `json:"seed,omitempty"`     // noise seed (default 0), as `hypernoise sample --seed`
	// Beta is the tilt temperature of a tilt-dial hypernetwork (omitted: its own).
	Beta *float64 `json:"beta,omitempty"`
}

// BadRequest is an error in the client's input: it becomes a 4xx answer with a JSON body naming
// what is allowed.
type BadRequest struct {
	Status  int      // HTTP status (400, 413)
	Msg     string   // what is wrong
	Allowed []string `json:",omitempty"` // the allowed values, when the input picks from a set
	Param   string   // the request field at fault ("" when none)
	Code    string   // a machine-readable reason ("" when none)
}

func (e *BadRequest) Error() string { return e.Msg }

func badf(allowed []string, format string, args ...any) *BadRequest {
	return &BadRequest{Status: 400, Msg: fmt.Sprintf(format, args...), Allowed: allowed}
}

// badp is badf naming the request field at fault.
func badp(param string, allowed []string, format string, args ...any) *BadRequest {
	return &BadRequest{Status: 400, Msg: fmt.Sprintf(format, args...), Allowed: allowed, Param: param}
}

// DecodeRequest reads one JSON GenerateRequest of at most limit bytes from r. It accepts exactly
// one JSON object with known fields of the right types and nothing after it; anything else is a
// *BadRequest (status 413 when the body is larger than limit). It reads at most limit+1 bytes.
func DecodeRequest(r io.Reader, limit int64) (GenerateRequest, error) {
	return decodeJSON[GenerateRequest](r, limit, fieldNames,
		`{"prompt": "sneaker", "method": "base", "n": 4, "seed": 7}`)
}

// decodeJSON reads one JSON object T of at most limit bytes with only the fields named in fields
// (see DecodeRequest); example is the shape named when the body is empty.
func decodeJSON[T any](r io.Reader, limit int64, fields []string, example string) (T, error) {
	var req T
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return req, badf(nil, "reading the request body: %v", err)
	}
	if int64(len(data)) > limit {
		return req, &BadRequest{Status: 413, Msg: fmt.Sprintf("request body larger than %d bytes", limit), Code: "body_too_large"}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return req, badf(nil, "empty body; send a JSON object like %s", example)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field == "":
			return req, badf(nil, "body must be a JSON object, got a JSON %s", te.Value)
		case errors.As(err, &te):
			return req, badp(te.Field, nil, "field %q must be %s, got a JSON %s", te.Field, jsonKind(te.Type.String()), te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return req, badp(field, fields, "%s; fields: %s", strings.TrimPrefix(err.Error(), "json: "), strings.Join(fields, ", "))
		}
		return req, badf(nil, "body is not a JSON object: %v", err)
	}
	if dec.More() {
		return req, badf(nil, "body holds data after the JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return req, badf(nil, "body holds data after the JSON object")
	}
	return req, nil
}

var fieldNames = []string{"prompt", "method", "hypernet", "n", "seed", "beta"}

func jsonKind(goType string) string {
	switch {
	case strings.Contains(goType, "int"):
		return "an integer"
	case strings.Contains(goType, "float"):
		return "a number"
	case strings.Contains(goType, "string"):
		return "a string"
	}
	return "a JSON object"
}
