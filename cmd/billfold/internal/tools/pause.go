package tools

import (
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/billfold/billfold/cmd/billfold/internal/cli"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/admin"
)

// billfold pause / billfold resume: the incident step that stops folding
// while intake goes on (docs/reliability.md#pause-and-resume).

// Pause is `billfold pause` with its arguments; it returns the exit code.
func Pause(args []string, stdout, stderr io.Writer) int {
	return runHold("pause", args, stdout, stderr)
}

// Resume is `billfold resume` with its arguments; it returns the exit code.
func Resume(args []string, stdout, stderr io.Writer) int {
	return runHold("resume", args, stdout, stderr)
}

// runHold pauses or resumes the named projections (all when none is
// named) and prints the projections paused afterwards.
func runHold(verb string, args []string, stdout, stderr io.Writer) int {
	var f cli.Flags
	fs := cli.NewFlagSet(verb, stderr)
	f.Register(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: billfold %s [projection...] [flags]  (no projection: all; needs BILLFOLD_ADMIN_TOKEN)\n", verb)
		fs.PrintDefaults()
	}
	names, err := cli.ParseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	var out struct {
		Paused []projections.Pause `json:"paused"`
	}
	req := admin.PauseRequest{Projections: names}
	if err := cli.AdminJSON(f.Server, http.MethodPost, "/v1/projections/"+verb, nil, req, &out); err != nil {
		return cli.Fail(stderr, verb, err)
	}
	if f.Output == "json" {
		return cli.WriteJSON(stdout, out.Paused)
	}
	printPaused(stdout, out.Paused)
	return 0
}

func printPaused(w io.Writer, paused []projections.Pause) {
	if len(paused) == 0 {
		fmt.Fprintln(w, "no projection is paused: every projector folds")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PAUSED\tBY\tSINCE")
	for _, p := range paused {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Projection, p.By, p.At.Format(time.RFC3339))
	}
	_ = tw.Flush()
}
