package doctor

import "github.com/hypernoise/hypernoise/data/fashionmnist"

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

// checkModels is wired to models/fashion once its embedded weights land.
func checkModels() Models { return Models{Problem: "not wired yet"} }
