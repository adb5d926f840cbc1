// Command coreexplain tells why a Go process died, or why a live one is
// stuck, with evidence.
//
//	coreexplain [flags] CORE [BINARY]     explain a crash
//	coreexplain SUBCOMMAND ...            see coreexplain --help
//
// Exit codes: 0 explained, 1 usage error, 2 the input cannot be analysed.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes.
const (
	exitOK       = 0
	exitUsage    = 1
	exitBadInput = 2
)

// runFunc runs a command with the positional arguments left after its
// flags were parsed.
type runFunc func(e *env, args []string) int

// command is a subcommand. Each lives in its own file and registers itself
// from init.
type command struct {
	name  string
	usage string // the synopsis after "coreexplain "
	// short says in a few words what the command does, for the list of
	// subcommands and shell completions.
	short   string
	summary string // the help text
	// examples are shown by --help, one per line; TestHelpExamples runs
	// the ones that read a core.
	examples []string
	// words are what the first argument may be, for shell completion;
	// when empty, the shell completes file names.
	words []string
	// setup declares the command's flags on fs, bound to values of its
	// own, and returns what runs the command with them. Flag values live
	// only in that closure and each run gets fresh ones, so no command can
	// read flags another declared (the demo once read the explain
	// command's never-registered flags and failed on an empty --progress).
	setup func(fs *pflag.FlagSet) runFunc
}

var commands = map[string]*command{}

func register(c *command) {
	if c.setup == nil || c.name == "" || c.short == "" {
		panic("coreexplain: command without name, short or setup")
	}
	if _, dup := commands[c.name]; dup {
		panic("coreexplain: command " + c.name + " registered twice")
	}
	commands[c.name] = c
}

// env is what a command runs with.
type env struct {
	stdout, stderr io.Writer
	cmd            *command       // the command being run
	fs             *pflag.FlagSet // its flags, for its usage
	root           *cobra.Command // the command tree (completion scripts are made from it)
}

// usageError is returned by argument checks and turns into exit code 1.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// flagError is a flag that did not parse; it carries the command whose
// usage is then shown.
type flagError struct {
	err error
	cmd *command
}

func (e *flagError) Error() string { return e.err.Error() }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command line args and returns the exit code. Each call
// builds its command tree anew, with fresh flag values.
func run(args []string, stdout, stderr io.Writer) int {
	code := exitOK
	root := newRoot(stdout, stderr, &code)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if _, err := root.ExecuteC(); err != nil {
		var fe *flagError
		if errors.As(err, &fe) {
			fmt.Fprintf(stderr, "coreexplain: %v\n", fe.err)
			shortUsage(stderr, fe.cmd)
			return exitUsage
		}
		// Cobra's own errors: an unknown subcommand of a command that has
		// them (help FOO), or arguments a completion command refuses.
		fmt.Fprintf(stderr, "coreexplain: %v\n", err)
		return exitUsage
	}
	return code
}

// newRoot is the command tree: the root explains a core (and is also the
// explain subcommand), every registered command is a subcommand.
func newRoot(stdout, stderr io.Writer, code *int) *cobra.Command {
	explain := commands["explain"]
	e := &env{stdout: stdout, stderr: stderr}
	root := newCobra(explain, "coreexplain", e, code)
	e.root = root
	root.Version = versionLine()
	root.SetVersionTemplate("{{.Version}}\n")
	// The completion command is ours (with our help and examples); the
	// hidden __complete command it relies on stays cobra's.
	root.CompletionOptions.DisableDefaultCmd = true
	for _, n := range commandNames() {
		root.AddCommand(newCobra(commands[n], n, e, code))
	}
	root.AddCommand(newCobra(explain, "explain", e, code))
	return root
}

// newCobra makes the cobra command for c under the name use.
func newCobra(c *command, use string, e *env, code *int) *cobra.Command {
	cc := &cobra.Command{
		Use:                   use,
		Short:                 c.short,
		Long:                  c.summary,
		Example:               strings.Join(c.examples, "\n"),
		Args:                  cobra.ArbitraryArgs,
		SilenceErrors:         true,
		SilenceUsage:          true,
		DisableFlagsInUseLine: true,
		ValidArgs:             c.words,
	}
	fs := cc.Flags()
	fs.SortFlags = false
	runner := c.setup(fs)
	cc.RunE = func(cmd *cobra.Command, args []string) error {
		if why := unsupported(thisOS, c.name); why != "" {
			fmt.Fprintf(e.stderr, "coreexplain: %s\n", why)
			*code = exitBadInput
			return nil
		}
		ce := *e
		ce.cmd, ce.fs = c, cmd.Flags()
		*code = runner(&ce, args)
		return nil
	}
	cc.SetHelpFunc(func(cmd *cobra.Command, _ []string) { printUsage(e.stdout, c, cmd.Flags()) })
	cc.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &flagError{err, c} })
	return cc
}

// commandNames are the subcommands but explain, sorted.
func commandNames() []string {
	var names []string
	for n := range commands {
		if n != "explain" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

func printUsage(w io.Writer, c *command, fs *pflag.FlagSet) {
	fmt.Fprintf(w, "usage: coreexplain %s\n\n%s\n", c.usage, c.summary)
	if c.name == "explain" {
		fmt.Fprintf(w, "\nsubcommands:\n")
		for _, n := range commandNames() {
			fmt.Fprintf(w, "  %-11s %s\n", n, commands[n].short)
		}
		fmt.Fprintf(w, "\nRun 'coreexplain SUBCOMMAND --help' for a subcommand's flags.\n")
	}
	fmt.Fprintf(w, "\nflags:\n")
	writeFlags(w, fs)
	if len(c.examples) > 0 {
		fmt.Fprintf(w, "\nexamples:\n")
		for _, e := range c.examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	if c.name == "explain" {
		fmt.Fprintf(w, "\nexit status: 0 explained, 1 usage error, 2 the input cannot be analysed\n")
	}
}

// shortUsage is what follows a usage error: the synopsis and where the
// help is, as the go command prints them.
func shortUsage(w io.Writer, c *command) {
	if c == nil {
		return
	}
	name := c.name + " "
	if c.name == "explain" {
		name = ""
	}
	fmt.Fprintf(w, "usage: coreexplain %s\nRun 'coreexplain %s--help' for details.\n", c.usage, name)
}

// fail prints err and returns the exit code it calls for.
func fail(e *env, err error) int {
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(e.stderr, "coreexplain: %s\n", ue.msg)
		shortUsage(e.stderr, e.cmd)
		return exitUsage
	}
	fmt.Fprintf(e.stderr, "coreexplain: %s\n", strings.TrimSpace(err.Error()))
	return exitBadInput
}

// writeFlags lists fs's flags as the go command's help does: the flag, its
// value's name if it takes one, the default when it is not the zero value,
// and the description wrapped under it.
func writeFlags(w io.Writer, fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		line := "  "
		if f.Shorthand != "" {
			line += "-" + f.Shorthand + ", "
		}
		line += "--" + f.Name
		name, usage := pflag.UnquoteUsage(f)
		if f.Value.Type() != "bool" && name != "" {
			line += " " + name
		}
		if d := f.DefValue; d != "" && d != "false" && d != "0" && d != "[]" {
			if f.Value.Type() == "string" {
				d = strconv.Quote(d)
			}
			usage += " (default " + d + ")"
		}
		fmt.Fprintln(w, line)
		for _, l := range wrapWords(usage, 72) {
			fmt.Fprintf(w, "        %s\n", l)
		}
	})
}

// wrapWords breaks s into lines of at most width bytes at spaces; a word
// longer than width gets a line of its own.
func wrapWords(s string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(s) {
		if line != "" && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
