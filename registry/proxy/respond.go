package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
)

// denial is a decision not to serve.
type denial struct {
	image  string
	reason string
	rule   string
}

func (d *denial) Error() string {
	if d.rule != "" {
		return fmt.Sprintf("%s: %s (policy rule %q)", d.image, d.reason, d.rule)
	}
	return fmt.Sprintf("%s: %s", d.image, d.reason)
}

// upstreamError is an infrastructure failure (502/503), or what the
// upstream does not have (404).
type upstreamError struct {
	status int
	code   string // the error code answered; "" is UNAVAILABLE
	msg    string
}

func (e *upstreamError) Error() string { return e.msg }

// fail answers an error: denials 403 DENIED, infrastructure 502/503.
func (p *Proxy) fail(w http.ResponseWriter, r *http.Request, req request, err error) {
	var d *denial
	var ue *upstreamError
	switch {
	case errors.As(err, &d):
		p.metrics.decisions.WithLabelValues("deny", short(d.reason)).Inc()
		p.audit(r, req, "deny", d.reason, d.rule, "")
		writeError(w, http.StatusForbidden, "DENIED", d.Error())
	case errors.As(err, &ue):
		p.metrics.decisions.WithLabelValues("error", "upstream").Inc()
		p.audit(r, req, "error", ue.msg, "", "")
		code := ue.code
		if code == "" {
			code = "UNAVAILABLE"
		}
		writeError(w, ue.status, code, ue.msg)
	default:
		p.metrics.decisions.WithLabelValues("error", "internal").Inc()
		p.audit(r, req, "error", err.Error(), "", "")
		writeError(w, http.StatusBadGateway, "UNAVAILABLE", err.Error())
	}
}

// short maps a reason to a metric label.
func short(reason string) string {
	for _, k := range []string{"not signed", "no policy", "trust data", "does not match", "not referenced", "signers disagree", "expired", "unreachable", "invalid repository name"} {
		if strings.Contains(reason, k) {
			return strings.ReplaceAll(k, " ", "_")
		}
	}
	return "other"
}

func (p *Proxy) audit(r *http.Request, req request, decision, reason, rule, digest string) {
	p.log.LogAttrs(r.Context(), slog.LevelInfo, "decision",
		slog.String("decision", decision), slog.String("client", r.RemoteAddr),
		slog.String("method", r.Method), slog.String("name", req.name),
		slog.String("kind", req.kind), slog.String("ref", req.ref),
		slog.String("digest", digest), slog.String("rule", rule), slog.String("reason", reason))
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	w.WriteHeader(status)
	fmt.Fprintf(w, "{\"errors\":[{\"code\":%q,\"message\":%q}]}\n", code, msg)
}
