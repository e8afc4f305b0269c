package hypernet

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/ckpt"
)

// configPath is the JSON file beside a .safetensors file: "m.safetensors" -> "m.json".
func configPath(path string) string {
	return strings.TrimSuffix(path, ".safetensors") + ".json"
}

// SaveWeights writes the variables under scope (e.g. a trained modulator's Scope()) to path, a
// .safetensors file, and config (any JSON-encodable description: architecture, objective, reward
// spec, base-model name) to the .json beside it. Both writes are atomic; the config is also kept in
// the safetensors metadata under "config".
func SaveWeights(ctx *context.Context, scope, path string, config any) error {
	js, err := json.Marshal(config)
	if err != nil {
		return fmt.Errorf("encoding the config: %w", err)
	}
	if err := ckpt.Save(ctx, scope, path, map[string]string{"config": string(js), "scope": scope}); err != nil {
		return err
	}
	return ckpt.WriteJSON(configPath(path), config)
}

// LoadWeights loads weights written by SaveWeights into ctx (shapes are checked against existing
// variables) and decodes the JSON config beside them into config (nil to skip).
func LoadWeights(ctx *context.Context, path string, config any) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("no weights at %s: %w", path, err)
	}
	if _, err := ckpt.Load(ctx, path); err != nil {
		return err
	}
	if config != nil {
		return ckpt.ReadJSON(configPath(path), config)
	}
	return nil
}
