package image

import (
	"context"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/minictr/minictr/pkg/trace"
)

// ClientOptions configure a Client. The zero value is a quiet client for
// this host's platform that reads credentials where docker keeps them.
type ClientOptions struct {
	Tracer   trace.Tracer // every registry request, with its curl (--explain); nil = none
	Progress Progress     // per-layer progress of pull and push; nil = none
	// Platform selects from multi-arch indexes; zero = the host's.
	Platform v1.Platform
	// Insecure lists registries reached over plain HTTP besides loopback.
	Insecure []string
	// Keychain finds credentials; nil = ~/.docker/config.json and its
	// credential helpers (authn.DefaultKeychain).
	Keychain authn.Keychain
	// Transport carries the HTTP requests; nil = go-containerregistry's
	// default. The client adds the --explain trace and the size caps of
	// limitTransport on top of it.
	Transport http.RoundTripper
}

// A Client talks to registries, as go-containerregistry's remote package
// does: it pulls images into a Store, pushes them from one, searches
// repositories and logs in. It holds no state but its options; a Store
// holds the images.
type Client struct {
	opts ClientOptions
}

// NewClient makes a registry client.
func NewClient(opts ClientOptions) *Client {
	opts.Tracer = trace.Or(opts.Tracer)
	if opts.Progress == nil {
		opts.Progress = discardProgress{}
	}
	if opts.Platform.OS == "" {
		opts.Platform = hostPlatform()
	}
	if opts.Keychain == nil {
		opts.Keychain = authn.DefaultKeychain
	}
	if opts.Transport == nil {
		opts.Transport = remote.DefaultTransport
	}
	return &Client{opts: opts}
}

// Parse is ParseReference with the client's insecure registries.
func (c *Client) Parse(ref string) (Reference, error) {
	return parseReference(ref, c.opts.Insecure)
}

// transport is every request's way out: traced for --explain, and with
// each untrusted response capped before anyone reads it.
func (c *Client) transport() http.RoundTripper {
	return limitTransport{base: explainTransport{base: c.opts.Transport, tracer: c.opts.Tracer}}
}

// remoteOptions are the go-containerregistry options every registry call
// uses: our context, credentials from the keychain, our transport and the
// platform.
func (c *Client) remoteOptions(ctx context.Context) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(c.opts.Keychain),
		remote.WithTransport(c.transport()),
		remote.WithPlatform(c.opts.Platform),
		remote.WithJobs(4),
	}
}

func (c *Client) registry(host string) (name.Registry, error) {
	var opts []name.Option
	if isInsecure(host, c.opts.Insecure) {
		opts = append(opts, name.Insecure)
	}
	return name.NewRegistry(host, opts...)
}
