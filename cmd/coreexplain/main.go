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
	"strings"

	"github.com/spf13/pflag"
)

// Exit codes.
const (
	exitOK       = 0
	exitUsage    = 1
	exitBadInput = 2
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// command is a subcommand. Each lives in its own file and registers itself
// from init.
type command struct {
	name    string
	usage   string // the synopsis after "coreexplain "
	summary string
	// examples are shown by --help, one per line.
	examples []string
	// flags adds the command's flags; run gets the remaining arguments.
	flags func(fs *pflag.FlagSet)
	run   func(env *env, args []string) int
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

// env is what a command runs with.
type env struct {
	stdout, stderr io.Writer
	fs             *pflag.FlagSet
}

// usageError is returned by argument checks and turns into exit code 1.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	name := "explain"
	if len(args) > 0 {
		if c, ok := commands[args[0]]; ok && c.name != "explain" {
			name, args = c.name, args[1:]
		}
	}
	c := commands[name]
	fs := pflag.NewFlagSet("coreexplain "+c.name, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(io.Discard)
	if c.flags != nil {
		c.flags(fs)
	}
	help := fs.BoolP("help", "h", false, "show this help")
	showVersion := false
	if name == "explain" {
		fs.BoolVar(&showVersion, "version", false, "print the version and exit")
	}
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "coreexplain: %v\n\n", err)
		printUsage(stderr, c, fs)
		return exitUsage
	}
	if *help {
		printUsage(stdout, c, fs)
		return exitOK
	}
	if showVersion {
		fmt.Fprintf(stdout, "coreexplain %s\n", version)
		return exitOK
	}
	if why := unsupported(thisOS, c.name); why != "" {
		fmt.Fprintf(stderr, "coreexplain: %s\n", why)
		return exitBadInput
	}
	return c.run(&env{stdout: stdout, stderr: stderr, fs: fs}, fs.Args())
}

func printUsage(w io.Writer, c *command, fs *pflag.FlagSet) {
	fmt.Fprintf(w, "usage: coreexplain %s\n\n%s\n", c.usage, c.summary)
	if c.name == "explain" {
		fmt.Fprintf(w, "\nsubcommands:\n")
		var names []string
		for n := range commands {
			if n != "explain" {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(w, "  %-11s %s\n", n, firstSentence(commands[n].summary))
		}
		fmt.Fprintf(w, "\nRun 'coreexplain SUBCOMMAND --help' for a subcommand's flags.\n")
	}
	fmt.Fprintf(w, "\nflags:\n%s", fs.FlagUsages())
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

// fail prints err and returns the exit code it calls for.
func fail(e *env, err error) int {
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(e.stderr, "coreexplain: %s\n", ue.msg)
		return exitUsage
	}
	fmt.Fprintf(e.stderr, "coreexplain: %s\n", strings.TrimSpace(err.Error()))
	return exitBadInput
}

// firstSentence is the summary's first sentence on one line, for the list
// of subcommands.
func firstSentence(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if i := strings.Index(s, ". "); i >= 0 {
		s = s[:i+1]
	}
	return s
}
