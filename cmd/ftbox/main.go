// Command ftbox is the fault-tolerant box: the replicated appliance, its
// status and tools, and the bare emulator.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func main() {
	root := &cobra.Command{
		Use:           "ftbox",
		Short:         "Machine-level fault tolerance for Linux boxes",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(emuCmd(), benchCmd(), configCmd(), keygenCmd(), runCmd(), statusCmd(), ackCmd(), arbiterCmd(), dumpCmd())
	if err := root.Execute(); err != nil {
		code := 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
			if ee.err == nil {
				os.Exit(code)
			}
		}
		fmt.Fprintln(os.Stderr, "ftbox:", err)
		os.Exit(code)
	}
}
