package serve

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hypernoise/hypernoise/infer"
)

// ImagesRequest is the body of POST /v1/images/generations, OpenAI's image-generation request for
// the fields that apply to this server, with seed and beta as extensions.
type ImagesRequest struct {
	Prompt string `json:"prompt"`
	// Model is a loaded hypernetwork's name (the hypernoise method with it), a method name, or
	// "METHOD:HYPERNET"; omitted: the only hypernetwork loaded, else base.
	Model          string   `json:"model,omitempty"`
	N              *int     `json:"n,omitempty"`
	Size           string   `json:"size,omitempty"`            // "auto" or the generator's WxH
	ResponseFormat string   `json:"response_format,omitempty"` // b64_json only
	OutputFormat   string   `json:"output_format,omitempty"`   // png only
	Quality        string   `json:"quality,omitempty"`         // auto or standard
	User           string   `json:"user,omitempty"`            // accepted, unused
	Seed           *int64   `json:"seed,omitempty"`            // extension: noise seed (default 0)
	Beta           *float64 `json:"beta,omitempty"`            // extension: tilt temperature of a tilt dial
}

var imagesFields = []string{"prompt", "model", "n", "size", "response_format", "output_format", "quality", "user", "seed", "beta"}

// ImagesResponse is OpenAI's image-generation answer, with this server's figures as an extension.
type ImagesResponse struct {
	Created      int64       `json:"created"`
	Data         []ImageData `json:"data"`
	OutputFormat string      `json:"output_format"`
	Size         string      `json:"size"`
	Hypernoise   ImagesExtra `json:"hypernoise"`
}

// ImageData is one image of an ImagesResponse.
type ImageData struct {
	B64JSON string `json:"b64_json"` // a base64 PNG
}

// ImagesExtra is the extension of an ImagesResponse: the method, its cost and the rewards.
type ImagesExtra struct {
	Model       string    `json:"model"`
	Method      string    `json:"method"` // the method's label, e.g. "best-of-16"
	Hypernet    string    `json:"hypernet,omitempty"`
	Prompt      string    `json:"prompt"`
	Seed        uint64    `json:"seed"`
	Rewards     []float32 `json:"rewards"`
	RewardSpec  string    `json:"reward_spec"`
	NFEPerImage float64   `json:"nfe_per_image"`
	Seconds     float64   `json:"seconds"`
	BatchImages int       `json:"batch_images"`
	BatchReqs   int       `json:"batch_requests"`
}

// ModelEntry is one model of GET /v1/models' OpenAI list.
type ModelEntry struct {
	ID      string `json:"id"`
	Object  string `json:"object"` // "model"
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// modelEntries lists the model names the images endpoint accepts: the loaded hypernetworks,
// then the methods.
func (s *Server) modelEntries() []ModelEntry {
	var out []ModelEntry
	for _, h := range s.p.Hypernets() {
		out = append(out, ModelEntry{ID: h.Name, Object: "model", Created: s.created, OwnedBy: "hypernoise"})
	}
	for _, m := range s.offered() {
		out = append(out, ModelEntry{ID: m.Name, Object: "model", Created: s.created, OwnedBy: "hypernoise"})
	}
	return out
}

// resolveModel maps an OpenAI model name to a method and a hypernetwork.
func (s *Server) resolveModel(model string) (method, hypernet string, err error) {
	hns := s.p.Hypernets()
	var ids []string
	for _, e := range s.modelEntries() {
		ids = append(ids, e.ID)
	}
	switch {
	case model == "" && len(hns) == 1:
		return "hypernoise", hns[0].Name, nil
	case model == "":
		return "base", "", nil
	case slices.ContainsFunc(hns, func(h *infer.Hypernet) bool { return h.Name == model }):
		return "hypernoise", model, nil
	}
	method, hypernet, _ = strings.Cut(model, ":")
	if !slices.ContainsFunc(s.offered(), func(m MethodInfo) bool { return m.Name == method }) {
		return "", "", &BadRequest{Status: http.StatusNotFound, Param: "model", Code: "model_not_found", Allowed: ids,
			Msg: fmt.Sprintf("the model %q does not exist; models: %s (or METHOD:HYPERNET)", model, strings.Join(ids, ", "))}
	}
	return method, hypernet, nil
}

// imageRequest checks an ImagesRequest and turns it into a job.
func (s *Server) imageRequest(q ImagesRequest) (job, error) {
	switch q.ResponseFormat {
	case "", "b64_json":
	case "url":
		return job{}, badp("response_format", []string{"b64_json"}, `response_format "url" is not supported: this server keeps no images to link to; use "b64_json"`)
	default:
		return job{}, badp("response_format", []string{"b64_json"}, "unknown response_format %q; use \"b64_json\"", q.ResponseFormat)
	}
	if q.OutputFormat != "" && q.OutputFormat != "png" {
		return job{}, badp("output_format", []string{"png"}, "output_format %q is not supported; use \"png\"", q.OutputFormat)
	}
	if q.Quality != "" && q.Quality != "auto" && q.Quality != "standard" {
		return job{}, badp("quality", []string{"auto", "standard"}, "quality %q is not supported; use \"auto\" or \"standard\"", q.Quality)
	}
	method, hypernet, err := s.resolveModel(q.Model)
	if err != nil {
		return job{}, err
	}
	if q.Size != "" && q.Size != "auto" {
		size, err := s.size()
		if err != nil {
			return job{}, err
		}
		if q.Size != size {
			return job{}, badp("size", []string{"auto", size}, "size %q cannot be made: this model makes %s images only", q.Size, size)
		}
	}
	return s.check(GenerateRequest{Prompt: q.Prompt, Method: method, Hypernet: hypernet, N: q.N, Seed: q.Seed, Beta: q.Beta})
}

// size is the generator's image size as WIDTHxHEIGHT.
func (s *Server) size() (string, error) {
	shape, err := s.shape()
	if err != nil {
		return "", err
	}
	if len(shape) != 3 {
		return "", fmt.Errorf("the generator's samples %v are not images [H, W, C]", shape)
	}
	return fmt.Sprintf("%dx%d", shape[1], shape[0]), nil
}

func (s *Server) imagesGenerations(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodPost) {
		return
	}
	q, err := decodeJSON[ImagesRequest](r.Body, s.cfg.MaxBody, imagesFields, `{"prompt": "sneaker", "n": 4}`)
	if err != nil {
		writeError(w, err)
		return
	}
	j, err := s.imageRequest(q)
	if err != nil {
		writeError(w, err)
		return
	}
	res, err := s.Generate(r.Context(), j)
	if err != nil {
		writeError(w, err)
		return
	}
	size, err := s.size()
	if err != nil {
		writeError(w, err)
		return
	}
	out := ImagesResponse{Created: time.Now().Unix(), OutputFormat: "png", Size: size,
		Hypernoise: ImagesExtra{Model: q.Model, Method: res.Method, Hypernet: res.Hypernet, Prompt: res.Prompt, Seed: res.Seed,
			Rewards: res.Rewards, RewardSpec: res.RewardSpec, NFEPerImage: res.NFEPerImage, Seconds: res.Seconds,
			BatchImages: res.BatchRows, BatchReqs: res.BatchReqs}}
	for _, b := range res.Images {
		out.Data = append(out.Data, ImageData{B64JSON: b})
	}
	writeJSON(w, http.StatusOK, out)
}
