// Command mail2archer-sandbox runs mail2archer against local simulators of
// Microsoft Graph and Archer, so that it can be seen working, rehearsed
// with a real mapping and measured without a tenant or an Archer account.
// It is kept out of the service's binary, which carries neither simulator.
//
// Usage:
//
//	mail2archer-sandbox [flags]                 run the sandbox and deliver the samples
//	mail2archer-sandbox deliver FILE.eml…       deliver emails to a running sandbox
//	mail2archer-sandbox deliver --as-report --reporter ADDR FILE.eml…
//	                                            deliver each as that person's phishing report
//	mail2archer-sandbox bench [flags]           measure the service (see docs/performance.md)
package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "deliver":
			return sandboxDeliver(args[1:], stdout, stderr)
		case "bench":
			return benchCmd(args[1:], stdout, stderr)
		case "help", "-h", "--help":
			_, _ = fmt.Fprint(stdout, usage)
			return 0
		}
	}
	return sandboxCmd(args, stdout, stderr)
}

const usage = `Usage: mail2archer-sandbox [command]

Commands:
  (none) [flags]               run mail2archer against local Graph and Archer simulators
  deliver FILE.eml...          deliver emails to a running sandbox
  deliver --as-report [--reporter ADDR] FILE.eml...
                               deliver each email as a Report Message report of
                               it from ADDR (default reporter@contoso.com)
  bench [flags]                measure the service against the simulators (docs/performance.md)

Run mail2archer-sandbox -h for the sandbox's flags, mail2archer-sandbox bench -h
for the bench's.
`

// newLogger writes the service's logs readably to w.
func newLogger(w io.Writer, level zerolog.Level) zerolog.Logger {
	return zerolog.New(zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}).Level(level).With().Timestamp().Logger()
}
