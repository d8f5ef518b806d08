package image

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
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
// It is decided by the request the client made, not by the hop that
// answers: registries redirect blobs to storage whose paths look like
// anything (quay.io, ECR, GCR), and a hostile registry could redirect a
// manifest to a path with "/blobs/" in it. The path must end in a digest,
// so that a repository named x/blobs/y does not make its manifests blobs.
func isBlobContent(req *http.Request, resp *http.Response) bool {
	first := req
	for first.Response != nil && first.Response.Request != nil {
		first = first.Response.Request // the request that was redirected here
	}
	return first.Method == http.MethodGet && blobPath.MatchString(first.URL.Path) &&
		resp.StatusCode >= 200 && resp.StatusCode < 300
}

// blobPath is the distribution API's blob URL: /v2/<name>/blobs/<digest>.
var blobPath = regexp.MustCompile(`^/v2/.+/blobs/sha256:[0-9a-f]{64}$`)

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
