package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"ftbox/appliance"
)

func dumpCmd() *cobra.Command {
	var keyFile string
	c := &cobra.Command{
		Use:   "dump FILE.pcap[ng]",
		Short: "Decode a capture of the logging link (pcap or pcapng; - reads stdin)",
		Long: "Print every frame of a logging-link capture: time, MACs, EtherType, the logwire header, hello\n" +
			"contents, and with --key the decrypted entries of every session whose handshake the capture holds\n" +
			"(input frames are summarized: ARP, IPv4/IPv6, TCP, UDP, ICMP). Frames that do not parse, authenticate\n" +
			"or decrypt are shown as such.  e.g.  tcpdump -i log0 -w log.pcap ether proto 0x88b5",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var opts appliance.DumpOptions
			if keyFile != "" {
				k, err := appliance.LoadKey(keyFile)
				if err != nil {
					return err
				}
				opts.PSK = &k
			}
			var r io.Reader = os.Stdin
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return fmt.Errorf("dump: %w", err)
				}
				defer f.Close()
				r = f
			}
			_, err := appliance.Dump(cmd.OutOrStdout(), r, opts)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			return nil
		},
	}
	c.Flags().StringVar(&keyFile, "key", "", "the pair's key file, to authenticate hellos and decrypt entries")
	return c
}
