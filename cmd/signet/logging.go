package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
)

// logrusToSlog is a logrus hook that hands every entry to an slog
// handler at the matching level. notary logs through logrus's standard
// logger; with this hook its lines follow --log-format and --log-level
// like signet's own instead of reaching stderr as logrus text.
type logrusToSlog struct {
	h slog.Handler
}

func (logrusToSlog) Levels() []logrus.Level { return logrus.AllLevels }

func (l logrusToSlog) Fire(e *logrus.Entry) error {
	level := slogLevel(e.Level)
	ctx := e.Context
	if ctx == nil {
		ctx = context.Background()
	}
	if !l.h.Enabled(ctx, level) {
		return nil
	}
	r := slog.NewRecord(e.Time, level, strings.TrimSpace(e.Message), 0)
	r.AddAttrs(slog.String("component", "notary"))
	keys := make([]string, 0, len(e.Data))
	for k := range e.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		r.AddAttrs(slog.Any(k, e.Data[k]))
	}
	return l.h.Handle(ctx, r)
}

func slogLevel(l logrus.Level) slog.Level {
	switch {
	case l <= logrus.ErrorLevel: // panic, fatal, error
		return slog.LevelError
	case l == logrus.WarnLevel:
		return slog.LevelWarn
	case l == logrus.InfoLevel:
		return slog.LevelInfo
	}
	return slog.LevelDebug // debug, trace
}

func logrusLevel(l slog.Level) logrus.Level {
	switch {
	case l <= slog.LevelDebug:
		return logrus.DebugLevel
	case l <= slog.LevelInfo:
		return logrus.InfoLevel
	case l <= slog.LevelWarn:
		return logrus.WarnLevel
	}
	return logrus.ErrorLevel
}

// routeLogrus makes lg (logrus's standard logger, in the CLI) write
// through logger only, at level and above.
func routeLogrus(lg *logrus.Logger, logger *slog.Logger, level slog.Level) {
	lg.SetOutput(io.Discard)
	lg.SetLevel(logrusLevel(level))
	lg.ReplaceHooks(logrus.LevelHooks{})
	lg.AddHook(logrusToSlog{h: logger.Handler()})
}

// setupLogging runs before every command: notary's logrus lines go
// through signet's logger, so --log-format json holds for them too.
func (g *globalFlags) setupLogging(cmd *cobra.Command) error {
	logger, err := g.logger(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(g.logLevel)) // checked by g.logger
	routeLogrus(logrus.StandardLogger(), logger, level)
	return nil
}

// printError prints the error a command ended with: one line on stderr,
// a JSON log record with --log-format json.
func printError(root *cobra.Command, w io.Writer, err error) {
	if f := root.PersistentFlags().Lookup("log-format"); f != nil && strings.EqualFold(f.Value.String(), "json") {
		slog.New(slog.NewJSONHandler(w, nil)).Error(err.Error())
		return
	}
	fmt.Fprintln(w, "signet:", err)
}
