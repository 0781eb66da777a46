package trust

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"unicode"

	store "github.com/theupdateframework/notary/storage"
	"github.com/theupdateframework/notary/tuf/validation"
)

// Error codes of the Notary API (notary's server/errors) that signet acts on.
const (
	// CodeVersion: a newer version was published since the client read
	// the metadata; fetch it and re-apply the change.
	CodeVersion = "VERSION"
	// CodeInvalidUpdate: the update failed the server's validation.
	CodeInvalidUpdate = "INVALID_UPDATE"
)

// ServerError is an error answer of the trust server: its HTTP status and
// the first error of the errcode JSON body
// ({"errors":[{"code":..,"message":..,"detail":..}]}) that Notary servers
// send. notary's client keeps only the status ("trust server rejected
// operation."); signet keeps the server's code and message.
type ServerError struct {
	// Server is the trust server URL.
	Server string
	// Status is the HTTP status code.
	Status int
	// Code is the error code ("VERSION", "UPDATING", ...), if the body
	// had one.
	Code string
	// Message is the server's message, or a short text body.
	Message string
	// Err is notary's reading of the answer.
	Err error
}

func (e *ServerError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "trust server %s answered %d", e.Server, e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	msg := e.Message
	if msg == "" {
		msg = strings.ToLower(http.StatusText(e.Status))
	}
	if msg != "" {
		b.WriteString(": " + msg)
	}
	switch e.Status {
	case http.StatusUnauthorized:
		b.WriteString(": check the trust server credentials (--trust-username and SIGNET_TRUST_PASSWORD, or docker login)")
	case http.StatusForbidden:
		b.WriteString(": ask the trust server's administrator for access")
	}
	return b.String()
}

func (e *ServerError) Unwrap() error { return e.Err }

// IsConflict reports whether err is the trust server refusing an update
// because another publisher changed the repository first.
func IsConflict(err error) bool {
	var se *ServerError
	return errors.As(err, &se) && se.Code == CodeVersion
}

// maxErrorAnswer caps how much of an error answer is read.
const maxErrorAnswer = 64 << 10

// answers is the transport notary's HTTP store uses: it remembers the last
// error answer of the trust server (notary's store reads only the status,
// or at most 1 KiB of a 400 body for a validation detail) and hands the
// body on unchanged. Repo.wrap attaches the remembered answer to the error
// notary returns. notary's client makes one request at a time, so the
// last answer is the one that failed.
type answers struct {
	server string
	next   http.RoundTripper

	mu   sync.Mutex
	last *ServerError
}

func (a *answers) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := a.next.RoundTrip(req)
	if err != nil || resp.StatusCode < 400 || resp.StatusCode == http.StatusNotFound {
		// Success, a network error, or "not found" (which notary reads as
		// no such metadata): nothing to remember.
		a.set(nil)
		return resp, err
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxErrorAnswer))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	se := &ServerError{Server: a.server, Status: resp.StatusCode}
	if rerr == nil {
		se.Code, se.Message = parseAnswer(body)
	}
	a.set(se)
	return resp, nil
}

func (a *answers) set(se *ServerError) {
	a.mu.Lock()
	a.last = se
	a.mu.Unlock()
}

// take returns and forgets the last error answer.
func (a *answers) take() *ServerError {
	a.mu.Lock()
	defer a.mu.Unlock()
	se := a.last
	a.last = nil
	return se
}

// parseAnswer reads the code and message of an errcode JSON body, or a
// short one-line text body.
func parseAnswer(body []byte) (code, message string) {
	var ans struct {
		Errors []struct {
			Code    string          `json:"code"`
			Message string          `json:"message"`
			Detail  json.RawMessage `json:"detail"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &ans); err == nil && len(ans.Errors) > 0 {
		e := ans.Errors[0]
		msg := e.Message
		var detail string
		if json.Unmarshal(e.Detail, &detail) == nil && detail != "" && !strings.Contains(msg, detail) {
			msg += ": " + detail
		}
		return printable(e.Code, 64), printable(msg, 512)
	}
	text := strings.TrimSpace(string(body))
	if text == "" || strings.ContainsAny(text, "\n<") {
		return "", "" // empty, several lines or HTML: the status says enough
	}
	return "", printable(text, 512)
}

// printable keeps an untrusted string to one line of printable text of
// at most max bytes.
func printable(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, s)
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "..."
	}
	return s
}

// fromServer reports whether err is notary's reading of an error answer
// (as opposed to a network failure or a local error).
func fromServer(err error) bool {
	var (
		unavailable store.ErrServerUnavailable
		invalid     store.ErrInvalidOperation
		vValidation validation.ErrValidation
		vRoot       validation.ErrBadRoot
		vTargets    validation.ErrBadTargets
		vSnapshot   validation.ErrBadSnapshot
		vHierarchy  validation.ErrBadHierarchy
	)
	return errors.As(err, &unavailable) || errors.As(err, &invalid) ||
		errors.As(err, &vValidation) || errors.As(err, &vRoot) || errors.As(err, &vTargets) ||
		errors.As(err, &vSnapshot) || errors.As(err, &vHierarchy)
}
