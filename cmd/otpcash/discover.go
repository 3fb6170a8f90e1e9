package main

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/otpcash/otpcash/internal/discover"
)

// nameNotIdentity is said wherever a name is chosen or found: anyone on
// the network can announce any name, so the short authentication string,
// not the name, tells the payer it reached the right wallet.
const nameNotIdentity = `A name is a convenience, not an identity: anyone on the network can announce
any name. Compare the short authentication string on both screens before you
accept a payment session.`

// discoverFlags are the mDNS settings shared by receive, pay and peers.
type discoverFlags struct {
	iface string
	cfg   discover.Config
}

func (d *discoverFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&d.iface, "interface", "", "send and answer mDNS queries on this network interface only (default: all)")
	cmd.Flags().DurationVar(&d.cfg.Timeout, "discover-timeout", discover.DefaultTimeout, "how long to listen for receivers' answers")
}

func (d *discoverFlags) config() (discover.Config, error) {
	cfg := d.cfg
	if d.iface != "" {
		i, err := net.InterfaceByName(d.iface)
		if err != nil {
			return cfg, fmt.Errorf("--interface %q: %w", d.iface, err)
		}
		cfg.Interface = i
	}
	return cfg, nil
}

// announce advertises the receiver listening on ln under name until the
// returned stop is called.
func (d *discoverFlags) announce(cmd *cobra.Command, name string, ln net.Listener) (stop func(), err error) {
	cfg, err := d.config()
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().(*net.TCPAddr)
	var ips []net.IP
	if !addr.IP.IsUnspecified() {
		ips = []net.IP{addr.IP}
	}
	c, err := discover.Announce(name, ips, addr.Port, cfg)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "announcing %q on the local network (%s); payers still compare the short authentication string\n", name, discover.Service)
	if addr.IP.IsLoopback() {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: listening on %s, only this machine can pay; use --listen :PORT for the network\n", addr.IP)
	}
	return func() { c.Close() }, nil
}

// resolve turns --to into host:port: an address with a numeric port is
// used as given, any other text ("Shop: Erin" included) is a name looked
// up on the local network.
func (d *discoverFlags) resolve(ctx context.Context, cmd *cobra.Command, to string) (string, error) {
	if _, port, err := net.SplitHostPort(to); err == nil {
		if _, err := strconv.ParseUint(port, 10, 16); err == nil {
			return to, nil
		}
	}
	cfg, err := d.config()
	if err != nil {
		return "", err
	}
	p, err := discover.Lookup(ctx, to, cfg)
	if err != nil {
		return "", fmt.Errorf("pay --to: %w", err)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "found %q at %s; compare the short authentication string with the payee\n", p.Name, p.HostPort())
	return p.HostPort(), nil
}

func walletPeersCmd() *cobra.Command {
	var d discoverFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "peers",
		Short: "List the receivers announcing themselves on the local network",
		Long: `List the receivers that answer an mDNS query for ` + discover.Service + ` (started
with "receive --announce NAME"): name, address, port.

` + nameNotIdentity,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := d.config()
			if err != nil {
				return err
			}
			peers, err := discover.Browse(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if asJSON {
				type peer struct {
					Name    string `json:"name"`
					Address string `json:"address"`
					Port    uint16 `json:"port"`
				}
				out := make([]peer, 0, len(peers))
				for _, p := range peers {
					out = append(out, peer{p.Name, p.Addr.String(), p.Port})
				}
				return printJSON(cmd, out)
			}
			if len(peers) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "no receivers answered")
			}
			for _, p := range peers {
				fmt.Fprintf(cmd.OutOrStdout(), "%q\t%s\t%d\n", p.Name, p.Addr, p.Port)
			}
			return nil
		},
	}
	d.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the receivers as JSON")
	return cmd
}
