// Command tiercache operates a tiercache fleet from a shell: it invalidates
// keys, patterns and groups exactly as the library does (Redis first, then
// one message on the namespace's bus), watches the bus, and decodes what
// Redis holds for a key.
//
// Usage:
//
//	tiercache COMMAND [flags] [ARG...]
//
// The commands are invalidate, invalidate-pattern, clear, watch and
// inspect; "tiercache COMMAND --help" describes each, and docs/cli.md shows
// them at work. Connection flags follow redis-cli (-h, -p, -a, --user,
// --tls, -n), with --url redis://... (or TIERCACHE_REDIS_URL), --cluster
// ADDR,... and --sentinel ADDR,... --master NAME; --namespace selects the
// fleet's namespace (default "tiercache").
//
// Exit status: 0 on success, 1 when Redis or the bus failed, 2 for a usage
// error (a bad flag or argument). Every error is one line on stderr.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1 // Redis or the bus refused or failed
	exitUsage = 2 // bad flags or arguments
)

// command is one subcommand.
type command struct {
	name    string
	args    string // the positional arguments, for the usage line
	summary string
	help    string // what it does, in full
	run     func(ctx context.Context, e *env, args []string) error
	// noConn: the command takes no connection flags.
	noConn bool
	// flags adds the command's own flags.
	flags func(fs *flagSet, e *env)
}

var commands = []*command{cmdInvalidate, cmdInvalidatePattern, cmdClear, cmdWatch, cmdInspect}

// env is what one run of the command has: its streams, its environment,
// and the parsed connection flags.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	conn           connFlags
	cmd            *command
	jsonOut        bool // --json, for the commands that take it
	watch          watchFlags
}

// usageError is an error in the command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

func main() {
	redis.SetLogger(quietLogger{}) // go-redis's own log lines would break "one line per error"
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal ends the command's ctx; the signals' default
	// handling is back after it, so that a second Ctrl-C ends a command
	// that the first could not stop at once (a Redis call waits up to
	// --timeout).
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// quietLogger drops go-redis's log lines: every failure reaches the user as
// the error of the call that met it.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// run runs the command line args and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	e := &env{stdout: stdout, stderr: stderr, getenv: getenv}
	if len(args) == 0 {
		printUsage(stderr)
		return exitUsage
	}
	name := args[0]
	if name == "-h" || name == "-help" || name == "--help" || name == "help" {
		printUsage(stdout)
		return exitOK
	}
	var cmd *command
	for _, c := range commands {
		if c.name == name {
			cmd = c
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "tiercache: unknown command %q (commands: %s; see tiercache --help)\n", name, commandNames())
		return exitUsage
	}
	e.cmd = cmd
	err := runCommand(ctx, e, cmd, args[1:])
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errHelp):
		return exitOK
	}
	fmt.Fprintf(stderr, "tiercache %s: %s\n", cmd.name, oneLine(err.Error()))
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitFail
}

// runCommand parses cmd's flags and runs it.
func runCommand(ctx context.Context, e *env, cmd *command, args []string) error {
	fs := newFlagSet(cmd)
	if !cmd.noConn {
		e.conn.register(fs)
	}
	if cmd.flags != nil {
		cmd.flags(fs, e)
	}
	pos, err := fs.parse(args)
	if errors.Is(err, errHelp) {
		fs.usage(e.stdout)
		return errHelp
	}
	if err != nil {
		return err
	}
	if !cmd.noConn {
		e.conn.set = fs.setFlags()
	}
	return cmd.run(ctx, e, pos)
}

func commandNames() string {
	names := make([]string, len(commands))
	for i, c := range commands {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

// oneLine folds a multi-line error message into one line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, `tiercache operates a tiercache fleet: it invalidates keys, patterns and
groups as the library does (Redis first, then one bus message), watches the
invalidation bus, and decodes what Redis holds for a key.

Usage:
  tiercache COMMAND [flags] [ARG...]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-19s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run "tiercache COMMAND --help" for a command's flags. Connection flags, as
redis-cli's: -h HOST -p PORT -a PASSWORD --user NAME --tls -n DB, or
--url redis://... (default: $TIERCACHE_REDIS_URL, else 127.0.0.1:6379), or
--cluster ADDR,... or --sentinel ADDR,... --master NAME; --namespace NS.
Exit status: 0 success, 1 Redis or bus failure, 2 usage error.
`)
}
