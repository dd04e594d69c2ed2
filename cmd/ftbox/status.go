package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"ftbox/appliance"
)

func statusCmd() *cobra.Command {
	var (
		socket     string
		configPath string
		asJSON     bool
		timeout    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the box's role, protection and counters (Nagios exit codes)",
		Long: "Ask the daemon on its control socket for its status. Exit codes follow the Nagios plugin API:\n" +
			"0 OK (PROTECTED), 1 WARNING (UNPROTECTED, SYNCING, or no arbiter configured),\n" +
			"2 CRITICAL (HALTED, divergence, split-brain suspected, peer lost with no arbiter), 3 UNKNOWN (no daemon).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := socket
			if path == "" && configPath != "" {
				cfg, err := appliance.LoadConfig(configPath)
				if err != nil {
					return &exitError{code: appliance.ExitUnknown, err: err}
				}
				path = cfg.Box.ControlSocket
			}
			if path == "" {
				path = appliance.DefaultControlSocket
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			s, err := appliance.QueryStatus(ctx, path)
			code, werr := renderStatus(os.Stdout, s, err, asJSON)
			if werr != nil {
				return werr
			}
			return &exitError{code: code}
		},
	}
	cmd.Flags().StringVar(&socket, "socket", "", "control socket (default: the config's box.control_socket, else "+appliance.DefaultControlSocket+")")
	cmd.Flags().StringVar(&configPath, "config", "", "read the control socket's path from this config")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (schema_version 1)")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "give up on the daemon after this long")
	return cmd
}

// renderStatus prints a status (or the failure to get one) and returns the
// Nagios exit code.
func renderStatus(w io.Writer, s *appliance.Status, qerr error, asJSON bool) (int, error) {
	if qerr != nil {
		if asJSON {
			b, _ := json.MarshalIndent(map[string]any{
				"schema_version": appliance.StatusSchemaVersion, "health": "UNKNOWN",
				"exit_code": appliance.ExitUnknown, "error": qerr.Error(),
			}, "", "  ")
			_, err := fmt.Fprintf(w, "%s\n", b)
			return appliance.ExitUnknown, err
		}
		_, err := fmt.Fprintf(w, "UNKNOWN: ftbox daemon unreachable: %v\n", qerr)
		return appliance.ExitUnknown, err
	}
	if asJSON {
		b, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			return appliance.ExitUnknown, fmt.Errorf("encode status: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return s.ExitCode, err
	}
	return s.ExitCode, s.WriteText(w)
}
