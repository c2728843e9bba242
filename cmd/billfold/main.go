// Command billfold is the billfold binary: the server (serve) and the tools
// that talk to it. It is wiring only: flags, config, the embedded NATS
// server, and the construction of the packages that do the work.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/billfold/billfold/cmd/billfold/internal/doctor"
	"github.com/billfold/billfold/cmd/billfold/internal/tools"
)

// command is one subcommand.
type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

var commands = map[string]command{
	"serve":   {"run the server: webhook intake, journal, projections and the admin API", runServe},
	"bench":   {"measure ingest against the machine's own HTTP and durable-append limits", runBench},
	"sign":    {"print the headers and a curl command that make an event verify", tools.Sign},
	"send":    {"sign an event and deliver it to a running server", tools.Send},
	"version": {"print the version", runVersion},
	"get":     {"show one record from a running server: subscription, customer, order or wallet", tools.Get},
	"list":    {"list subscriptions (by state, provider, customer, account), customers or orders (by provider, account) from a running server", tools.List},
	"watch":   {"follow a running server's record changes (Server-Sent Events), resuming after drops", tools.Watch},
	"replay":  {"rebuild projections from the journal into a new generation, or replay selected events", tools.Replay},
	"dlq":     {"list, show and requeue dead letters", tools.DLQ},
	"verify":  {"fold the journal afresh and compare every record with the live projections", tools.Verify},
	"events":  {"show everything about one event, or list events by outcome", tools.Events},
	"pause":   {"stop the named projections (all when none) from folding while intake keeps journaling", tools.Pause},
	"resume":  {"let paused projections fold again; they catch up with what was journaled meanwhile", tools.Resume},
	"doctor":  {"print a running server's debug report: endpoints, streams, clock, failures, lag; exit 1 on problems", doctor.Run},
	"demo":    {"start an engine on a temp dir, deliver a signed sample history to it, print the results and keep serving", runDemo},
	"gameday": {"run the reliability drills against engines on temp dirs; print PASS/FAIL with figures, exit 1 on a failure", runGameday},
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "billfold: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	return cmd.run(args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: billfold <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-10s %s\n", name, commands[name].summary)
	}
	fmt.Fprintln(w, "\nRun 'billfold <command> -h' for a command's flags.")
}

func runVersion(_ []string, stdout, _ io.Writer) int {
	fmt.Fprintln(stdout, "billfold", version)
	return 0
}
