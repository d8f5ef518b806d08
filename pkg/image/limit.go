package image

import (
	"fmt"
	"io"
	"net/http"
	"strings"
)

// limitTransport caps what a registry can make us read. go-containerregistry
// reads a manifest whole (up to 100 MiB) before handing it to us, and an
// error body or a token answer without any cap: a hostile registry could
// make every pull allocate hundreds of megabytes before our own checks ran.
// So every response but a blob's content is cut at MaxManifestSize here,
// at the source: one with a larger Content-Length is refused unread, and a
// body with no length (chunked, endless) fails as soon as it passes the
// limit. Blobs are capped by the size their manifest gives them, where they
// are read (unpackStream).
type limitTransport struct {
	base http.RoundTripper
}

func (l limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(req)
	if err != nil || isBlobContent(req, resp) {
		return resp, err
	}
	what := "response"
	if strings.Contains(req.URL.Path, "/manifests/") {
		what = "manifest"
	}
	if resp.ContentLength > MaxManifestSize {
		resp.Body.Close()
		return nil, fmt.Errorf("%w: %s of %d bytes is over the %d-byte limit", ErrInvalid, what, resp.ContentLength, MaxManifestSize)
	}
	resp.Body = &limitedBody{rc: resp.Body, left: MaxManifestSize, what: what}
	return resp, nil
}

// isBlobContent: a successful GET of a blob, whose size its descriptor caps.
func isBlobContent(req *http.Request, resp *http.Response) bool {
	return req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/") &&
		resp.StatusCode >= 200 && resp.StatusCode < 300
}

// limitedBody fails a body longer than left bytes.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
	what string
}

func (b *limitedBody) Read(p []byte) (int, error) {
	// Ask for one byte more than may come: getting it proves the body long.
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return 0, fmt.Errorf("%w: %s over the %d-byte limit", ErrInvalid, b.what, MaxManifestSize)
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
