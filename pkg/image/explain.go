package image

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/minictr/minictr/pkg/trace"
)

// explainTransport reports every registry request to the tracer with its
// status and the curl command that makes the same request by hand: the
// distribution API, one HTTP call at a time. Credentials never appear.
type explainTransport struct {
	base   http.RoundTripper
	tracer trace.Tracer
}

func (e explainTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := e.base.RoundTrip(req)
	status := "error: "
	if err != nil {
		status += err.Error()
	} else {
		status = resp.Status
	}
	e.tracer.Step("registry", fmt.Sprintf("%s %s -> %s", req.Method, req.URL.Redacted(), status), curlOf(req))
	return resp, err
}

// curlOf is the curl command for req, with the headers that matter to a
// registry (Accept, Content-Type, Range) and a placeholder for the token.
func curlOf(req *http.Request) string {
	var b strings.Builder
	b.WriteString("curl -sS")
	switch req.Method {
	case http.MethodGet:
	case http.MethodHead:
		b.WriteString(" -I")
	default:
		b.WriteString(" -X " + req.Method)
	}
	for _, h := range []string{"Accept", "Content-Type", "Range"} {
		for _, v := range req.Header.Values(h) {
			fmt.Fprintf(&b, " -H '%s: %s'", h, v)
		}
	}
	if auth := req.Header.Get("Authorization"); auth != "" {
		if scheme, _, _ := strings.Cut(auth, " "); strings.EqualFold(scheme, "Basic") {
			b.WriteString(" -u \"$USER:$PASSWORD\"")
		} else {
			fmt.Fprintf(&b, " -H \"Authorization: %s $TOKEN\"", scheme)
		}
	}
	if req.Method == http.MethodPut || req.Method == http.MethodPatch || req.Method == http.MethodPost {
		if req.ContentLength != 0 {
			b.WriteString(" --data-binary @FILE")
		}
	}
	b.WriteString(" '" + req.URL.Redacted() + "'")
	return b.String()
}

// classify is the one wrapper for a registry's refusals: it says them in
// one line, and marks 401 and 403 with ErrUnauthorized, so that the CLI
// can suggest logging in.
func classify(err error) error {
	var te *transport.Error
	if !errors.As(err, &te) {
		return err
	}
	if te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden {
		return fmt.Errorf("%w: %w", ErrUnauthorized, registryError{te})
	}
	return registryError{te}
}

// registryError is a registry's refusal in one line. go-containerregistry
// puts an answer it cannot parse, often a whole HTML page, in its message.
type registryError struct{ te *transport.Error }

func (e registryError) Error() string {
	msg := fmt.Sprintf("%d %s", e.te.StatusCode, http.StatusText(e.te.StatusCode))
	if len(e.te.Errors) > 0 {
		msg = e.te.Errors[0].String()
	}
	if r := e.te.Request; r != nil {
		msg = r.Method + " " + r.URL.Redacted() + ": " + msg
	}
	return msg
}

func (e registryError) Unwrap() error { return e.te }
