package publish

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/signet-project/signet/registry"
	"github.com/signet-project/signet/trust"
)

// Results of a status check, by exit status: ok 0; due and denied 1;
// error 2.
const (
	// StatusOK: nothing expires within the window.
	StatusOK = "ok"
	// StatusDue: a role expires within the window, has expired, or
	// failed verification.
	StatusDue = "due"
	// StatusDenied: no trust data, or trust data that fails verification
	// (root, timestamp, snapshot or targets).
	StatusDenied = "denied"
	// StatusError: could not check (bad name, trust server unreachable).
	StatusError = "error"
)

// StatusReport is one image's expiry status; its JSON is documented in
// docs/expiry.md (keep them in step).
type StatusReport struct {
	Image     string             `json:"image"`
	GUN       string             `json:"gun,omitempty"`
	Result    string             `json:"result"`
	Error     string             `json:"error,omitempty"`
	Checked   time.Time          `json:"checked"`
	WarnUntil time.Time          `json:"warnUntil"`
	Roles     []trust.RoleExpiry `json:"roles"`
}

// Status reads each image's trust data through the engine (every
// delegation, expiry ignored so that expired roles are shown) and says
// per role when it expires and who renews it. An image that cannot be
// checked gets a report with its error; the others are still checked.
func Status(ctx context.Context, c Config, images []string, warn time.Duration, now func() time.Time) []StatusReport {
	if now == nil {
		now = time.Now
	}
	out := make([]StatusReport, 0, len(images))
	for _, image := range images {
		out = append(out, statusOf(ctx, c, image, warn, now))
	}
	return out
}

func statusOf(ctx context.Context, c Config, image string, warn time.Duration, now func() time.Time) StatusReport {
	t := now()
	rep := StatusReport{Image: image, Checked: t.UTC(), WarnUntil: t.Add(warn).UTC(), Roles: []trust.RoleExpiry{}}
	fail := func(err error) StatusReport {
		rep.Result, rep.Error = StatusError, err.Error()
		if IsDenied(err) {
			rep.Result = StatusDenied
		}
		return rep
	}
	repoName, tagName := splitTag(image)
	if tagName != "" {
		return fail(fmt.Errorf("status %s: expiry is per repository: name it without a tag", image))
	}
	repo, err := registry.ParseRepository(repoName)
	if err != nil {
		return fail(err)
	}
	rep.GUN = registry.GUN(repo)
	r, err := c.open(ctx, repo, "pull")
	if err != nil {
		return fail(err)
	}
	st, err := r.Status(ctx, trust.StatusOptions{Warn: warn, Now: func() time.Time { return t }})
	if err != nil {
		return fail(err)
	}
	rep.Roles = st.Roles
	rep.Result = StatusOK
	if st.Due() {
		rep.Result = StatusDue
	}
	return rep
}

// StatusExit is the exit status for reports: 2 if any image could not
// be checked, else 1 if any is due or denied, else 0.
func StatusExit(reports []StatusReport) int {
	code := 0
	for _, r := range reports {
		switch r.Result {
		case StatusError:
			return 2
		case StatusDue, StatusDenied:
			code = 1
		}
	}
	return code
}

// WriteStatusJSON writes reports as a JSON array.
func WriteStatusJSON(w io.Writer, reports []StatusReport) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "    ")
	return enc.Encode(reports)
}

// WriteStatusTable writes reports for people: per image a line with the
// result, then a row per role.
func WriteStatusTable(w io.Writer, reports []StatusReport) error {
	ew := &errWriter{w: w}
	for i, rep := range reports {
		if i > 0 {
			fmt.Fprintln(ew)
		}
		switch rep.Result {
		case StatusError, StatusDenied:
			fmt.Fprintf(ew, "%s: %s: %s\n", rep.Image, strings.ToUpper(rep.Result), rep.Error)
			continue
		case StatusDue:
			fmt.Fprintf(ew, "%s: DUE: something expires before %s, has expired or failed\n", rep.Image, rep.WarnUntil.Format(time.RFC3339))
		default:
			fmt.Fprintf(ew, "%s: OK: nothing to renew before %s\n", rep.Image, rep.WarnUntil.Format(time.RFC3339))
		}
		tw := tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ROLE\tSTATE\tVERSION\tEXPIRES\tKEYS\tRENEWED BY")
		for _, ro := range rep.Roles {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ro.Role, ro.State, versionCell(ro), expiresCell(ro, rep.Checked), keysCell(ro), renewedCell(ro))
		}
		tw.Flush()
		for _, ro := range rep.Roles {
			if ro.Error != "" {
				fmt.Fprintf(ew, "  %s: %s\n", ro.Role, ro.Error)
			}
		}
	}
	return ew.err
}

func versionCell(ro trust.RoleExpiry) string {
	if ro.Version == 0 {
		return "-"
	}
	return fmt.Sprint(ro.Version)
}

// expiresCell is the expiry date and how far away it is.
func expiresCell(ro trust.RoleExpiry, now time.Time) string {
	if ro.Expires.IsZero() {
		return "-"
	}
	d := ro.Expires.Sub(now)
	when := "in " + span(d)
	if d <= 0 {
		when = span(-d) + " ago"
	}
	return ro.Expires.Format("2006-01-02 15:04 MST") + " (" + when + ")"
}

// span is a duration in whole days, hours or minutes.
func span(d time.Duration) string {
	unit := func(n int64, name string) string {
		if n == 1 {
			return "1 " + name
		}
		return fmt.Sprintf("%d %ss", n, name)
	}
	switch {
	case d >= 48*time.Hour:
		return unit(int64(d/(24*time.Hour)), "day")
	case d >= 2*time.Hour:
		return unit(int64(d/time.Hour), "hour")
	case d >= time.Minute:
		return unit(int64(d/time.Minute), "minute")
	}
	return "under a minute"
}

// keysCell is "threshold of n: id, id" with IDs cut to 12 characters.
func keysCell(ro trust.RoleExpiry) string {
	if len(ro.KeyIDs) == 0 {
		return "none"
	}
	ids := make([]string, len(ro.KeyIDs))
	for i, id := range ro.KeyIDs {
		ids[i] = id[:min(12, len(id))]
	}
	return fmt.Sprintf("%d of %d: %s", ro.Threshold, len(ids), strings.Join(ids, ", "))
}

func renewedCell(ro trust.RoleExpiry) string {
	switch ro.RenewedBy {
	case trust.RenewServer:
		return "trust server, on read once expired"
	case trust.RenewHere:
		return "signet refresh (keys here)"
	case trust.RenewKeyHolder:
		return "signet refresh where its keys are"
	case trust.RenewRootKeys:
		return "root keys (key ceremony)"
	}
	return ro.RenewedBy
}

// errWriter keeps the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

// RefreshReport is what Refresh did to one image's repository.
type RefreshReport struct {
	Image string
	GUN   string
	trust.RefreshResult
	Err error
}

// Refresh re-signs, for each image's repository, the targets roles (and
// a snapshot whose key is here) with the keys at hand, before they
// expire (see trust.Repo.Refresh). Every image is tried; the error
// joins those that failed, on one line.
func Refresh(ctx context.Context, c Config, images []string, opts trust.RefreshOptions) ([]RefreshReport, error) {
	var (
		out  []RefreshReport
		errs []error
	)
	for _, image := range images {
		rep := RefreshReport{Image: image}
		rep.GUN, rep.RefreshResult, rep.Err = refreshOne(ctx, c, image, opts)
		if rep.Err != nil {
			errs = append(errs, rep.Err)
		}
		out = append(out, rep)
	}
	if len(errs) == 0 {
		return out, nil
	}
	return out, oneLine(errs)
}

// oneLine is several errors as one line.
type oneLine []error

func (e oneLine) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (e oneLine) Unwrap() []error { return e }

func refreshOne(ctx context.Context, c Config, image string, opts trust.RefreshOptions) (string, trust.RefreshResult, error) {
	repoName, tagName := splitTag(image)
	if tagName != "" {
		return "", trust.RefreshResult{}, fmt.Errorf("refresh %s: expiry is per repository: name it without a tag", image)
	}
	repo, err := registry.ParseRepository(repoName)
	if err != nil {
		return "", trust.RefreshResult{}, err
	}
	r, err := c.open(ctx, repo, "push", "pull")
	if err != nil {
		return registry.GUN(repo), trust.RefreshResult{}, err
	}
	res, err := r.Refresh(ctx, opts)
	return r.GUN(), res, err
}
