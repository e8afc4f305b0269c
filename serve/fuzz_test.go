package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecodeRequest feeds arbitrary bodies to the request decoder: it must never panic, must
// answer every rejection with a *BadRequest of status 400 or 413 (413 exactly when the body is
// over the limit), and whatever it accepts must survive a JSON round trip unchanged.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"prompt": "sneaker", "method": "hypernoise", "hypernet": "align", "n": 4, "seed": 7}`,
		`{"prompt": "bag", "method": "base"}`,
		`{"prompt": "bag", "method": "hypernoise", "beta": 0.5}`,
		`{"n": 1e400}`, `{"seed": -1}`, `[]`, `null`, `"x"`, `{} {}`, `{"prompt": "\u0000"}`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	const limit = 512
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeRequest(bytes.NewReader(body), limit)
		if err != nil {
			var br *BadRequest
			if !errors.As(err, &br) || (br.Status != 400 && br.Status != 413) || br.Msg == "" {
				t.Fatalf("rejection %v is not a 400/413 BadRequest", err)
			}
			if (br.Status == 413) != (len(body) > limit) {
				t.Fatalf("status %d for a %d-byte body (limit %d)", br.Status, len(body), limit)
			}
			return
		}
		if len(body) > limit {
			t.Fatalf("accepted a %d-byte body over the limit %d", len(body), limit)
		}
		js, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("accepted request does not re-encode: %v", err)
		}
		again, err := DecodeRequest(bytes.NewReader(js), 1<<20)
		if err != nil || !reflect.DeepEqual(again, req) {
			t.Fatalf("round trip: %+v -> %s -> %+v (%v)", req, js, again, err)
		}
	})
}
