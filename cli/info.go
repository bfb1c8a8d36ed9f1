package cli

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/client"
)

func newInfoCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "info",
		Short: "Show the daemon's backend, bridge, version and readiness",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := app.Format(OutputTable, OutputJSON)
			if err != nil {
				return err
			}
			c, err := app.Client()
			if err != nil {
				return err
			}
			ctx, cancel := app.Context(cmd)
			defer cancel()
			info, err := c.Info(ctx)
			if err != nil {
				return err
			}
			if format == OutputJSON {
				return app.PrintJSON(info)
			}
			ready := "yes"
			if err := c.Ready(ctx); err != nil {
				// Not ready is what this line is for: no error of the command.
				ready = "no: " + readyReason(err)
			}
			return writeInfo(app, info, ready)
		},
	}
}

func writeInfo(app *App, info v1.Info, ready string) error {
	tw := tabwriter.NewWriter(app.Out, 0, 8, 2, ' ', 0)
	rows := [][2]string{
		{"Server", app.ServerAddress()},
		{"Version", info.Version},
		{"Backend", info.Backend},
		{"Bridge", info.Bridge},
		{"Datapath type", dash(info.DatapathType)},
		{"OpenFlow connected", yesNo(info.OpenFlowConnected)},
		{"Ready", ready},
	}
	if info.NoDHCP != "" {
		rows = append(rows, [2]string{"DHCP", "no: " + info.NoDHCP})
	}
	for _, kv := range rows {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// readyReason is /readyz's reason without the status vnetctl adds.
func readyReason(err error) string {
	if e := (*client.Error)(nil); errors.As(err, &e) {
		return strings.TrimSpace(e.Message)
	}
	return err.Error()
}
