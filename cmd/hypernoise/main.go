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
	// The work runs in a supervised child process, so that even an out-of-memory fatal error or a
	// kill by the system ends in one clear line (see cli.Supervise).
	os.Exit(cli.Supervise("hypernoise", os.Args[1:], os.Stderr, func() int {
		return cli.Main("hypernoise", about, commands, os.Args[1:], os.Stdout, os.Stderr)
	}))
}
