package hypernet

import (
	"strings"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/ckpt"
)

// configPath is the JSON file beside a .safetensors file: "m.safetensors" -> "m.json".
func configPath(path string) string {
	return strings.TrimSuffix(path, ".safetensors") + ".json"
}

// SaveWeights writes the variables under scope (e.g. a trained modulator's Scope()) to path, a
// .safetensors file, and config (any JSON object: architecture, objective, reward spec, base-model
// name) to the .json beside it, with the weights file's SHA-256; see ckpt.SaveWithConfig. Weights
// holding NaN or Inf are refused.
func SaveWeights(ctx *context.Context, scope, path string, config any) error {
	return ckpt.SaveWithConfig(ctx, scope, path, configPath(path), config)
}

// LoadWeights loads weights written by SaveWeights into ctx and decodes the JSON config beside
// them into config (nil to skip), after checking the pair's integrity (ckpt.LoadVerified). Nothing
// is loaded if any check fails.
func LoadWeights(ctx *context.Context, path string, config any) error {
	return LoadWeightsWith(ctx, path, config, ckpt.LoadOptions{})
}

// LoadWeightsWith is LoadWeights with opts restricting which tensors are accepted (scopes,
// existing variables with the expected shapes, completeness).
func LoadWeightsWith(ctx *context.Context, path string, config any, opts ckpt.LoadOptions) error {
	if config != nil {
		if _, err := ckpt.ReadConfig(configPath(path), config); err != nil {
			return err
		}
	}
	_, err := ckpt.LoadVerified(ctx, path, configPath(path), opts)
	return err
}
