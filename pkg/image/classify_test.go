package image

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// A registry that answers with a page of HTML gives a one-line error,
// which still unwraps to go-containerregistry's, and 401 stays marked.
func TestClassifyOneLine(t *testing.T) {
	u, _ := url.Parse("http://127.0.0.1:5000/v2/_catalog")
	for code, unauthorized := range map[int]bool{http.StatusNotFound: false, http.StatusUnauthorized: true} {
		resp := &http.Response{
			StatusCode: code,
			Body:       io.NopCloser(strings.NewReader("<html>\n<body>\n<h1>Not here</h1>\n</body>\n</html>\n")),
			Request:    &http.Request{Method: http.MethodGet, URL: u},
		}
		raw := transport.CheckError(resp, http.StatusOK)
		err := classify(raw)
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%d: error spans lines: %q", code, err)
		}
		if !strings.Contains(err.Error(), "GET http://127.0.0.1:5000/v2/_catalog: ") {
			t.Errorf("%d: error %q does not name the request", code, err)
		}
		var te *transport.Error
		if !errors.As(err, &te) || errors.Is(err, ErrUnauthorized) != unauthorized {
			t.Errorf("%d: %q: unwraps to transport.Error %v, unauthorized %v", code, err, te != nil, errors.Is(err, ErrUnauthorized))
		}
	}
}
