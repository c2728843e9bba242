package cli

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// NewFlagSet returns a flag set for subcommand name that writes its usage
// to stderr.
func NewFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("billfold "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// EnvName is the environment twin of a flag: BILLFOLD_ and the flag name in
// upper case with '-' as '_' (--data-dir: BILLFOLD_DATA_DIR).
func EnvName(flagName string) string {
	return "BILLFOLD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// ParseFlags parses args and then fills every flag not given on the command
// line from its environment twin, so a flag beats the environment and the
// environment beats the default.
func ParseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(EnvName(f.Name)); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", EnvName(f.Name), v, e)
			}
		}
	})
	return err
}
