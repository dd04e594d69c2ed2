package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"ftbox/appliance"
)

func configCmd() *cobra.Command {
	c := &cobra.Command{Use: "config", Short: "Configuration files"}
	c.AddCommand(&cobra.Command{
		Use:   "check FILE",
		Short: "Validate a box configuration file",
		Long: "Validate a box configuration file as `ftbox run --config FILE` does before it starts: its syntax and\n" +
			"values, the key file (mode 0600) and the guest image (its ELF header), reporting every problem.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := appliance.CheckConfigFile(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (box %s, preferred role %s)\n", args[0], cfg.Box.Name, cfg.Box.PreferredRole)
			return nil
		},
	})
	return c
}

func keygenCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "keygen FILE",
		Short: "Write a new pre-shared key for a pair's logging link (mode 0600; copy it to both boxes)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return appliance.GenerateKey(args[0])
		},
	}
}
