package doctor

import (
	"github.com/hypernoise/hypernoise/data/fashionmnist"
	"github.com/hypernoise/hypernoise/models/fashion"
)

// checkDataset reports whether the Fashion-MNIST files are where the Debian package puts them.
func checkDataset() Dataset {
	ok, problem := fashionmnist.Installed(fashionmnist.DefaultDir)
	d := Dataset{Installed: ok, Dir: fashionmnist.DefaultDir}
	if !ok {
		d.Problem = problem
		d.Install = fashionmnist.InstallHint
	}
	return d
}

// checkModels loads the embedded default and lists its parts and their size in bytes.
func checkModels() Models {
	m, err := fashion.Default()
	if err != nil {
		return Models{Problem: err.Error()}
	}
	var out Models
	for _, p := range fashion.Parts {
		if m.Has(p) {
			out.Names = append(out.Names, p)
			if f := m.Figures()[p]; f != nil {
				out.Bytes += int(f.Bytes)
			}
		}
	}
	if missing := m.Need(fashion.Parts...); missing != nil {
		out.Problem = missing.Error()
	}
	out.Present = len(out.Names) > 0 && out.Problem == ""
	return out
}
