// Command hypernoise trains, runs and evaluates noise hypernetworks for one-step generators.
// Each subcommand lives in its own file here and is a thin layer over the library.
package main

import (
	"os"

	"github.com/hypernoise/hypernoise/cli"
)

const about = `hypernoise: reward-aligned generation with one-step generators and learned noise hypernetworks.`

// commands is the list of subcommands; each file adds its own in an init function.
var commands []cli.Command

func main() {
	os.Exit(cli.Main("hypernoise", about, commands, os.Args[1:], os.Stdout, os.Stderr))
}
