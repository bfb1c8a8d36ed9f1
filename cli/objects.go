package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ovs-vnet/ovs-vnet/client"
)

// kind describes one kind of the daemon's objects (network, router, port) for
// what its commands share: get, list, delete, rendering and name completion.
type kind[T any] struct {
	name   string   // "network": in messages, -o name and command names
	plural string   // "networks"
	header []string // table columns
	row    func(T) []string
	// details are "key: value" lines get prints under its one-row table,
	// for what a list's row has no room for; nil for none.
	details func(T) []string
	nameOf  func(T) string
	// The client's methods, as method expressions: (*client.Client).Network.
	get  func(*client.Client, context.Context, string) (T, error)
	list func(*client.Client, context.Context) ([]T, error)
	del  func(*client.Client, context.Context, string) error
}

func newGetCmd[T any](app *App, k kind[T]) *cobra.Command {
	return &cobra.Command{
		Use:               "get NAME",
		Short:             "Show one " + k.name,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeNames(app, k, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := app.Client()
			if err != nil {
				return err
			}
			ctx, cancel := app.Context(cmd)
			defer cancel()
			obj, err := k.get(c, ctx, args[0])
			if err != nil {
				return err
			}
			return printOne(app, k, obj)
		},
	}
}

func newListCmd[T any](app *App, k kind[T]) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List " + k.plural,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := app.Client()
			if err != nil {
				return err
			}
			ctx, cancel := app.Context(cmd)
			defer cancel()
			objs, err := k.list(c, ctx)
			if err != nil {
				return err
			}
			return printList(app, k, objs)
		},
	}
}

func newDeleteCmd[T any](app *App, k kind[T]) *cobra.Command {
	var ignoreNotFound bool
	cmd := &cobra.Command{
		Use:     "delete NAME...",
		Aliases: []string{"rm"},
		Short:   "Delete " + k.plural,
		Long: "Delete " + k.plural + ", in the order given. The first failure stops the command\n" +
			"and sets the exit code; the " + k.plural + " before it stay deleted.",
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeNames(app, k, -1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := app.Format(OutputTable, OutputName, OutputJSON)
			if err != nil {
				return err
			}
			c, err := app.Client()
			if err != nil {
				return err
			}
			ctx, cancel := app.Context(cmd)
			defer cancel()
			for _, name := range args {
				err := k.del(c, ctx, name)
				if client.StatusOf(err) == http.StatusNotFound && ignoreNotFound {
					continue
				}
				if err != nil {
					return err
				}
				switch format {
				case OutputTable:
					err = app.Printf("%s %s deleted\n", k.name, name)
				case OutputName:
					err = app.Printf("%s/%s\n", k.name, name)
				}
				// -o json prints nothing: a deleted object has no body.
				if err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&ignoreNotFound, "ignore-not-found", false, "treat a "+k.name+" that does not exist as deleted")
	return cmd
}

// printOne renders one object: a one-row table and its details, the JSON
// object or kind/name.
func printOne[T any](app *App, k kind[T], obj T) error {
	format, err := app.Format(OutputTable, OutputJSON, OutputName)
	if err != nil {
		return err
	}
	switch format {
	case OutputJSON:
		return app.PrintJSON(obj)
	case OutputName:
		return app.Printf("%s/%s\n", k.name, k.nameOf(obj))
	}
	if err := app.Table(k.header, [][]string{k.row(obj)}); err != nil || k.details == nil {
		return err
	}
	return app.Printf("%s\n", strings.Join(k.details(obj), "\n"))
}

// printList renders objects: a table, a JSON list (never null) or kind/name lines.
func printList[T any](app *App, k kind[T], objs []T) error {
	format, err := app.Format(OutputTable, OutputJSON, OutputName)
	if err != nil {
		return err
	}
	switch format {
	case OutputJSON:
		if objs == nil {
			objs = []T{}
		}
		return app.PrintJSON(objs)
	case OutputName:
		for _, o := range objs {
			if err := app.Printf("%s/%s\n", k.name, k.nameOf(o)); err != nil {
				return err
			}
		}
		return nil
	}
	if len(objs) == 0 {
		// On stderr, as kubectl does: a script reading the table gets no rows.
		fmt.Fprintf(app.Err, "No %s found.\n", k.plural)
		return nil
	}
	rows := make([][]string, len(objs))
	for i, o := range objs {
		rows[i] = k.row(o)
	}
	return app.Table(k.header, rows)
}

// printApplied renders the answer of a PUT: "network blue created" (or
// unchanged, replaced…) with an optional detail, the JSON object or kind/name.
func printApplied[T any](app *App, k kind[T], obj T, outcome, detail string) error {
	format, err := app.Format(OutputTable, OutputJSON, OutputName)
	if err != nil {
		return err
	}
	switch format {
	case OutputJSON:
		return app.PrintJSON(obj)
	case OutputName:
		return app.Printf("%s/%s\n", k.name, k.nameOf(obj))
	}
	if detail != "" {
		detail = " (" + detail + ")"
	}
	return app.Printf("%s %s %s%s\n", k.name, k.nameOf(obj), outcome, detail)
}

func writeTable(out io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// dash stands in for an empty cell, so every column has a word in each row.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// completionTimeout bounds a completion's request: a shell waits on it.
const completionTimeout = 5 * time.Second

// completeNames completes the names of existing objects for up to max
// arguments (-1: any number), leaving out those already on the line.
func completeNames[T any](app *App, k kind[T], max int) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if max >= 0 && len(args) >= max {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		names, err := listNames(app, cmd, k)
		if err != nil {
			// The shell shows no stderr of a completion, but a user debugging
			// it with `vnetctl __complete …` sees why nothing came.
			fmt.Fprintf(cmd.ErrOrStderr(), "list %s: %s\n", k.plural, errorMessage(err, app.ServerAddress(), app.Timeout))
			return nil, cobra.ShellCompDirectiveError
		}
		return slices.DeleteFunc(names, func(n string) bool { return slices.Contains(args, n) }), cobra.ShellCompDirectiveNoFileComp
	}
}

func listNames[T any](app *App, cmd *cobra.Command, k kind[T]) ([]string, error) {
	c, err := app.Client()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), min(app.Timeout, completionTimeout))
	defer cancel()
	objs, err := k.list(c, ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(objs))
	for i, o := range objs {
		names[i] = k.nameOf(o)
	}
	return names, nil
}
