// Command usersd is the usersd service and its maintenance tasks, one
// subcommand each:
//
//	usersd serve                 the API, the web UI and the projections
//	usersd migrate               apply pending database migrations
//	usersd status                operational tables' sizes, last retention sweeps
//	usersd events export         the history as NDJSON
//	usersd projections rebuild   rebuild read models from the history
//	usersd audit verify          check the audit hash chains
//	usersd keys rotate           re-wrap the data keys under a new KEK
//	usersd token                 mint a development bearer token
//	usersd version               print the version
//	usersd help [command]
//
// Configuration comes from environment variables, which flags override (see
// config.go). Exit codes: 0 success, 1 failure, 2 bad command line or
// configuration.
//
// To add a subcommand, write a function returning a *command in its own file
// (see migrate.go) and list it in commands below.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// commands lists the subcommands, in the order `usersd help` shows them.
func subcommands() []*command {
	return []*command{
		serveCommand(),
		migrateCommand(),
		statusCommand(),
		eventsCommand(),
		projectionsCommand(),
		auditCommand(),
		keysCommand(),
		tokenCommand(),
		versionCommand(),
	}
}

// command is one subcommand of usersd.
type command struct {
	Name     string
	Synopsis string // arguments after the name, for the usage line, e.g. "[flags]"
	Summary  string // one line for `usersd help`
	Help     string // what `usersd <name> -h` explains above the flags

	// Setup registers the command's flags on fs and returns the function
	// that runs the command once fs is parsed, with the arguments left.
	Setup func(fs *flag.FlagSet, e *env) func(ctx context.Context, args []string) error
}

// env is what a command receives from the process, passed in so tests can
// run commands in parallel without touching the real environment.
type env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	Log            *slog.Logger // set before a command runs
}

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2 // bad command line or configuration
)

// usageError is a mistake on the command line or in the configuration:
// usersd says what is wrong and exits with exitUsage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, a second one ends the process at once
	// instead of waiting for a graceful stop that hangs.
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], &env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
	stop()
	os.Exit(code)
}

// run runs the command line args (without the program name) and returns the
// exit code.
func run(ctx context.Context, args []string, e *env) int {
	if len(args) == 0 {
		printUsage(e.Stderr)
		return exitUsage
	}
	name, args := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		return runHelp(args, e)
	}
	cmd := lookup(name)
	if cmd == nil {
		fmt.Fprintf(e.Stderr, "usersd: unknown command %q\nRun 'usersd help' for the list of commands.\n", name)
		return exitUsage
	}

	fs := newFlagSet(cmd, e)
	runCmd := cmd.Setup(fs, e)
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printCommandUsage(e.Stdout, cmd, fs)
			return exitOK
		}
		// flag has printed what is wrong.
		fmt.Fprintf(e.Stderr, "Run 'usersd %s -h' for usage.\n", cmd.Name)
		return exitUsage
	}

	logger, err := newLogger(e.Stderr, e.Getenv)
	if err != nil {
		fmt.Fprintf(e.Stderr, "usersd %s: %v\n", cmd.Name, err)
		return exitUsage
	}
	e.Log = logger.With("cmd", cmd.Name)

	if err := runCmd(ctx, positional); err != nil {
		var usage *usageError
		if errors.As(err, &usage) {
			fmt.Fprintf(e.Stderr, "usersd %s: %v\nRun 'usersd %s -h' for usage.\n", cmd.Name, err, cmd.Name)
			return exitUsage
		}
		e.Log.Error(cmd.Name+" failed", "err", err)
		return exitFailure
	}
	return exitOK
}

// parseInterspersed parses args on fs with the flags anywhere among the
// positional arguments, so that `usersd audit verify -workspace ID` (as the
// README writes it) reads -workspace as `usersd audit -workspace ID verify`
// does; the flag package alone stops at the first positional argument. A
// "--" ends the flags: what follows is positional. It answers the
// positional arguments in their order.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

func lookup(name string) *command {
	for _, c := range subcommands() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// newFlagSet returns the flag set of cmd, which reports parse errors on
// stderr in one line: run adds a hint, and prints the whole usage only when
// asked (-h).
func newFlagSet(cmd *command, e *env) *flag.FlagSet {
	fs := flag.NewFlagSet("usersd "+cmd.Name, flag.ContinueOnError)
	fs.SetOutput(e.Stderr)
	fs.Usage = func() {}
	return fs
}

// printCommandUsage prints cmd's usage line, help text and flags to w.
func printCommandUsage(w io.Writer, cmd *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: usersd %s %s\n\n%s\n", cmd.Name, cmd.Synopsis, strings.TrimSpace(cmd.Help))
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprintf(w, "\nFlags:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
}

// runHelp implements `usersd help [command]`.
func runHelp(args []string, e *env) int {
	if len(args) == 0 {
		printUsage(e.Stdout)
		return exitOK
	}
	if len(args) > 1 {
		fmt.Fprintln(e.Stderr, "usage: usersd help [command]")
		return exitUsage
	}
	cmd := lookup(args[0])
	if cmd == nil {
		fmt.Fprintf(e.Stderr, "usersd help: unknown command %q\nRun 'usersd help' for the list of commands.\n", args[0])
		return exitUsage
	}
	fs := newFlagSet(cmd, e)
	cmd.Setup(fs, e)
	printCommandUsage(e.Stdout, cmd, fs)
	return exitOK
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, "usersd manages the users of workspaces, event-sourced.\n\nUsage: usersd <command> [flags]\n\nCommands:\n")
	for _, c := range subcommands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.Name, c.Summary)
	}
	fmt.Fprintf(w, "  %-12s %s\n", "help", "show this list, or a command's flags: usersd help <command>")
	fmt.Fprintf(w, "\nRun 'usersd <command> -h' for a command's flags and configuration.\n")
}
