package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// errHelp reports that --help was asked for and answered.
var errHelp = errors.New("help")

// flagSet is a standard flag.FlagSet that lets flags and arguments mix
// ("invalidate KEY -n 1" as well as "invalidate -n 1 KEY"); "--" ends the
// flags. Go's flag package takes -name and --name alike.
type flagSet struct {
	*flag.FlagSet
	cmd *command
}

func newFlagSet(cmd *command) *flagSet {
	fs := flag.NewFlagSet("tiercache "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported in one line by run
	return &flagSet{FlagSet: fs, cmd: cmd}
}

// parse parses args and returns the positional arguments.
func (fs *flagSet) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			return nil, usageError{err.Error() + " (see tiercache " + fs.cmd.name + " --help)"}
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// setFlags returns the names of the flags given on the command line.
func (fs *flagSet) setFlags() map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// usage writes the command's help.
func (fs *flagSet) usage(w io.Writer) {
	c := fs.cmd
	fmt.Fprintf(w, "Usage: %s\n\n%s\n\nFlags:\n", strings.TrimSpace("tiercache "+c.name+" [flags] "+c.args), strings.TrimSpace(c.help))
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		line := "  " + dash + f.Name
		if name != "" {
			line += " " + name
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "%-28s %s\n", line, usage)
	})
}
