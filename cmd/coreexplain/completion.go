package main

import (
	"fmt"

	"github.com/spf13/pflag"
)

func init() {
	register(&command{
		name:  "completion",
		short: "print a shell completion script",
		usage: "completion bash|zsh|fish|powershell",
		summary: "Print a shell completion script: subcommands, flags, and file names for CORE and BINARY.\n" +
			"Load it in the current shell, or install it where the shell looks for completions.",
		examples: []string{
			"source <(coreexplain completion bash)",
			"coreexplain completion zsh > \"${fpath[1]}/_coreexplain\"",
			"coreexplain completion fish > ~/.config/fish/completions/coreexplain.fish",
		},
		words: []string{"bash", "zsh", "fish", "powershell"},
		setup: func(fs *pflag.FlagSet) runFunc {
			noDesc := fs.Bool("no-descriptions", false, "leave the descriptions of subcommands and flags out of the completions")
			return func(e *env, args []string) int {
				if len(args) != 1 {
					return fail(e, usageError{"completion takes one shell: bash, zsh, fish or powershell"})
				}
				var err error
				desc := !*noDesc
				switch args[0] {
				case "bash":
					err = e.root.GenBashCompletionV2(e.stdout, desc)
				case "zsh":
					if desc {
						err = e.root.GenZshCompletion(e.stdout)
					} else {
						err = e.root.GenZshCompletionNoDesc(e.stdout)
					}
				case "fish":
					err = e.root.GenFishCompletion(e.stdout, desc)
				case "powershell":
					if desc {
						err = e.root.GenPowerShellCompletionWithDesc(e.stdout)
					} else {
						err = e.root.GenPowerShellCompletion(e.stdout)
					}
				default:
					return fail(e, usageError{fmt.Sprintf("completion: unknown shell %q (bash, zsh, fish or powershell)", args[0])})
				}
				if err != nil {
					return fail(e, err)
				}
				return exitOK
			}
		},
	})
}
