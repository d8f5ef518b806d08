package image

import (
	"context"
	"fmt"
	"net/http"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// hubAuthKey is the key docker keeps Docker Hub credentials under.
const hubAuthKey = "https://index.docker.io/v1/"

// Login checks username and password against registry (docker.io when
// empty), then stores them in docker's config ($DOCKER_CONFIG or
// ~/.docker/config.json), in its credential helper when one is configured.
// Pulls and pushes read them back through the default keychain.
func (c *Client) Login(ctx context.Context, registry, username, password string) (Login, error) {
	host := registryHost(registry)
	reg, err := c.registry(host)
	if err != nil {
		return Login{}, fmt.Errorf("login to %s: %w", host, err)
	}
	auth := authn.FromConfig(authn.AuthConfig{Username: username, Password: password})
	base := c.transport()
	// The token exchange (registries with Bearer auth) fails on bad
	// credentials; registries with Basic auth only fail the /v2/ request.
	rt, err := transport.NewWithContext(ctx, reg, auth, base, []string{reg.Scope(transport.PullScope)})
	if err != nil {
		return Login{}, fmt.Errorf("login to %s: %w", host, classify(err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, reg.Scheme()+"://"+reg.RegistryStr()+"/v2/", nil)
	if err != nil {
		return Login{}, err
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return Login{}, fmt.Errorf("login to %s: %w", host, classify(err))
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Login{}, fmt.Errorf("login to %s: %s (wrong username or password?)", host, resp.Status)
	}
	cf, err := config.Load(config.Dir())
	if err != nil {
		return Login{}, fmt.Errorf("login to %s: %w", host, err)
	}
	key := authKey(host)
	creds := types.AuthConfig{Username: username, Password: password, ServerAddress: key}
	out := Login{ConfigFile: cf.Filename, Helper: helperFor(cf, key)}
	if out.Helper != "" {
		// docker-credential-<helper> store, reading the credentials as JSON on stdin.
		err = cf.GetCredentialsStore(key).Store(creds)
	} else {
		// The plain file: config.json's "auths", with "auth": base64(user:password).
		cf.AuthConfigs[key] = creds
	}
	if err == nil {
		err = cf.Save()
	}
	if err != nil {
		return Login{}, fmt.Errorf("login to %s: saving credentials: %w", host, err)
	}
	c.opts.Tracer.Step("registry", "store credentials for "+key+" in "+where(out), "")
	return out, nil
}

// Login says where Login kept the credentials.
type Login struct {
	ConfigFile string // docker's config.json
	Helper     string // the credential helper ("pass", "secretservice"), or "" for the file itself
}

// helperFor is the credential helper config.json names for a registry.
func helperFor(cf *configfile.ConfigFile, key string) string {
	if h := cf.CredentialHelpers[key]; h != "" {
		return h
	}
	return cf.CredentialsStore
}

func where(l Login) string {
	if l.Helper != "" {
		return "docker-credential-" + l.Helper
	}
	return l.ConfigFile
}

// Logout forgets the credentials of registry. It reports false when there
// were none.
func (c *Client) Logout(registry string) (bool, error) {
	host := registryHost(registry)
	cf, err := config.Load(config.Dir())
	if err != nil {
		return false, fmt.Errorf("logout from %s: %w", host, err)
	}
	key := authKey(host)
	if _, ok := cf.AuthConfigs[key]; !ok && cf.CredentialsStore == "" && cf.CredentialHelpers[key] == "" {
		return false, nil
	}
	if err := cf.GetCredentialsStore(key).Erase(key); err != nil {
		return false, fmt.Errorf("logout from %s: %w", host, err)
	}
	if err := cf.Save(); err != nil {
		return false, fmt.Errorf("logout from %s: %w", host, err)
	}
	return true, nil
}

func registryHost(r string) string {
	switch r {
	case "", DefaultRegistry, "index.docker.io", hubAuthKey:
		return DefaultRegistry
	}
	return r
}

func authKey(host string) string {
	if host == DefaultRegistry {
		return hubAuthKey
	}
	return host
}
