package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"ftbox/appliance"
)

func statusCmd() *cobra.Command {
	return controlCmd("status", "Show the box's role, protection and counters (Nagios exit codes)",
		"Ask the daemon on its control socket for its status. Exit codes follow the Nagios plugin API:\n"+
			"0 OK (PROTECTED), 1 WARNING (UNPROTECTED but serving, SYNCING, arbiter unreachable or behind, no arbiter\n"+
			"configured), 2 CRITICAL (nothing served here: HALTED, GOING_LIVE, output held for a claim, peer silent;\n"+
			"divergence, split brain, an unacknowledged cold start; peer lost with no arbiter), 3 UNKNOWN (no daemon).",
		appliance.QueryStatus)
}

func ackCmd() *cobra.Command {
	return controlCmd("ack", "Acknowledge the box's standing alarms (a cold start, a rival primary) and show its status",
		"A cold start (the guest restarted from blank because its state was lost in a double failure) and a rival\n"+
			"primary of the box's own epoch (the arbiter granted it twice) keep `ftbox status` CRITICAL until an operator\n"+
			"acknowledges them with this command. It prints the status after, with its exit code.",
		appliance.Acknowledge)
}

// controlCmd is a command that makes one control-socket request and prints
// the status it returns, exiting with its Nagios code.
func controlCmd(use, short, long string, op func(context.Context, string) (*appliance.Status, error)) *cobra.Command {
	var (
		socket, configPath string
		asJSON             bool
		timeout            time.Duration
	)
	cmd := &cobra.Command{
		Use: use, Short: short, Long: long,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := controlPath(socket, configPath)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			s, err := op(ctx, path)
			code, werr := renderStatus(cmd.OutOrStdout(), s, err, asJSON)
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

// controlPath is the control socket named by --socket, else by the
// config's box.control_socket, else the default.
func controlPath(socket, configPath string) (string, error) {
	if socket != "" {
		return socket, nil
	}
	if configPath != "" {
		cfg, err := appliance.LoadConfig(configPath)
		if err != nil {
			return "", &exitError{code: appliance.ExitUnknown, err: err}
		}
		return cfg.Box.ControlSocket, nil
	}
	return appliance.DefaultControlSocket, nil
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
