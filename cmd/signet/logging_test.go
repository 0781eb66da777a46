package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

// TestRouteLogrus: logrus entries (notary's logs) come out of signet's
// slog handler at the matching level, with their fields, and nothing is
// written as logrus text.
func TestRouteLogrus(t *testing.T) {
	tests := []struct {
		at        slog.Level
		log       func(*logrus.Logger)
		wantLevel string // "" when dropped
		wantMsg   string
	}{
		{slog.LevelInfo, func(l *logrus.Logger) { l.Warn("Error getting targets/releases: expired") }, "WARN", "Error getting targets/releases: expired"},
		{slog.LevelInfo, func(l *logrus.Logger) { l.Error("could not publish") }, "ERROR", "could not publish"},
		{slog.LevelInfo, func(l *logrus.Logger) { l.Info("initializing repository") }, "INFO", "initializing repository"},
		{slog.LevelInfo, func(l *logrus.Logger) { l.Debug("loading timestamp") }, "", ""},
		{slog.LevelDebug, func(l *logrus.Logger) { l.Debug("loading timestamp") }, "DEBUG", "loading timestamp"},
		{slog.LevelDebug, func(l *logrus.Logger) { l.Trace("very verbose") }, "", ""},
		{slog.LevelWarn, func(l *logrus.Logger) { l.Info("initializing repository") }, "", ""},
		{slog.LevelError, func(l *logrus.Logger) { l.Warn("expired") }, "", ""},
		{slog.LevelInfo, func(l *logrus.Logger) { l.WithError(errors.New("boom")).Warn("with a field\n") }, "WARN", "with a field"},
	}
	for _, tc := range tests {
		var out, text bytes.Buffer
		lg := logrus.New()
		lg.SetOutput(&text)
		routeLogrus(lg, slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: tc.at})), tc.at)
		tc.log(lg)
		if text.Len() != 0 {
			t.Errorf("logrus wrote text: %q", text.String())
		}
		if tc.wantLevel == "" {
			if out.Len() != 0 {
				t.Errorf("at %v: logged %q, want nothing", tc.at, out.String())
			}
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal(out.Bytes(), &rec); err != nil {
			t.Fatalf("at %v: %q is not one JSON record: %v", tc.at, out.String(), err)
		}
		if rec["level"] != tc.wantLevel || rec["msg"] != tc.wantMsg || rec["component"] != "notary" {
			t.Errorf("at %v: %v, want level %s msg %q component notary", tc.at, rec, tc.wantLevel, tc.wantMsg)
		}
		if strings.Contains(tc.wantMsg, "field") && rec["error"] != "boom" {
			t.Errorf("the logrus field was lost: %v", rec)
		}
	}
}
