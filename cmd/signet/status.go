package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/signet-project/signet/internal/publish"
	"github.com/signet-project/signet/trust"
)

func newStatusCmd(g *globalFlags) *cobra.Command {
	var (
		tf     trustFlags
		warn   string
		output string
	)
	cmd := &cobra.Command{
		Use:   "status IMAGE...",
		Short: "Show when each role's trust data expires; exit 1 if something is due",
		Long: `Show, for each repository, every role's version, expiry, keys and
threshold, and who renews it: the trust server (timestamp, and the
snapshot unless this trust dir holds its key), 'signet refresh' with keys
here, whoever holds the keys elsewhere, or the root keys. The trust data
is read through the same engine as verify and the proxy, with every
delegation, ignoring expiry: expired roles are shown, not refused.

A role is due when it expires within --warn (and the trust server does
not renew it by itself), has expired, or is a delegation that failed
verification.

Exit status (for a cron job or an alert):
  0  nothing is due
  1  something is due, or the trust data is missing or fails verification
  2  could not check: bad arguments, trust server unreachable
     (with several images, the highest wins)`,
		Example: `  signet status --warn 30d registry.example.com/team/app
  signet status -o json registry.example.com/team/app | jq '.[].roles[] | select(.state != "ok")'`,
		Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.MinimumNArgs(1)(cmd, args); err != nil {
				return &exitError{2, err}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "json" {
				return &exitError{2, fmt.Errorf("--output %q: use table or json", output)}
			}
			window, err := trust.ParseDuration(warn)
			if err != nil {
				return &exitError{2, fmt.Errorf("--warn: %w", err)}
			}
			c, err := tf.config(cmd, g)
			if err != nil {
				return &exitError{2, err}
			}
			reports := publish.Status(cmd.Context(), c, args, window, nil)
			write := publish.WriteStatusTable
			if output == "json" {
				write = publish.WriteStatusJSON
			}
			if err := write(cmd.OutOrStdout(), reports); err != nil {
				return &exitError{2, fmt.Errorf("write the status: %w", err)}
			}
			if code := publish.StatusExit(reports); code != 0 {
				return &exitError{code, fmt.Errorf("status: %s", statusSummary(reports))}
			}
			return nil
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &exitError{2, err} })
	tf.register(cmd)
	cmd.Flags().StringVar(&warn, "warn", "30d", "warning window: roles expiring within it are due (30d, 2w, 36h)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

// statusSummary names the images that need attention, for stderr.
func statusSummary(reports []publish.StatusReport) string {
	var due, denied, unchecked []string
	for _, r := range reports {
		switch r.Result {
		case publish.StatusDue:
			due = append(due, r.Image)
		case publish.StatusDenied:
			denied = append(denied, r.Image)
		case publish.StatusError:
			unchecked = append(unchecked, r.Image)
		}
	}
	var parts []string
	if len(due) > 0 {
		parts = append(parts, "due: "+strings.Join(due, ", ")+": renew with signet refresh where the keys are (see the table)")
	}
	if len(denied) > 0 {
		parts = append(parts, "no trust data or trust data that fails verification: "+strings.Join(denied, ", "))
	}
	if len(unchecked) > 0 {
		parts = append(parts, "could not check: "+strings.Join(unchecked, ", "))
	}
	return strings.Join(parts, "; ")
}
