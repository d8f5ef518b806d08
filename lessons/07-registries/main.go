//go:build !exercise

// Lesson 07: how a registry serves images. A tiny client of the OCI
// distribution API with nothing but net/http: list tags, fetch a manifest
// with the Accept headers that choose its format, fetch a blob and check
// that its bytes hash to its name, and answer a 401 with a token or Basic
// credentials, as docker does.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
)

// accept lists the manifest formats we understand; a registry answers with
// one of them, or 404 when it only has a format we did not name.
var accept = []string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}

type client struct {
	base       string // http://127.0.0.1:5000
	user, pass string // for a 401; empty = anonymous
	token      string // a bearer token, once we have one
}

func main() { os.Exit(run()) }

const usage = "usage: lesson07 [-u USER:PASS] [-o FILE] tags HOST REPO | manifest HOST REPO REF | blob HOST REPO DIGEST"

// verbs and the arguments each needs, with an example for the lab's registry.
var verbs = map[string]struct{ args, example string }{
	"tags":     {"HOST REPO", "lesson07 tags 127.0.0.1:5000 busybox"},
	"manifest": {"HOST REPO REF", "lesson07 manifest 127.0.0.1:5000 busybox latest"},
	"blob":     {"HOST REPO DIGEST", "lesson07 blob 127.0.0.1:5000 busybox sha256:..."},
}

func run() int {
	fs := flag.NewFlagSet("lesson07", flag.ContinueOnError)
	creds := fs.String("u", "", "USER:PASSWORD for registries that ask")
	out := fs.String("o", "", "blob: write the verified blob to this file (default: its digest's hex)")
	fs.Usage = func() { fmt.Fprintln(fs.Output(), usage); fs.PrintDefaults() }
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	verb := fs.Arg(0)
	v, ok := verbs[verb]
	switch {
	case verb == "":
		fs.Usage()
		fmt.Fprintln(os.Stderr, "lesson07: no verb: try", verbs["tags"].example)
		return 2
	case !ok:
		fmt.Fprintln(os.Stderr, usage)
		fmt.Fprintf(os.Stderr, "lesson07: unknown verb %q: want tags, manifest or blob\n", verb)
		return 2
	case fs.NArg()-1 != len(strings.Fields(v.args)):
		fmt.Fprintf(os.Stderr, "lesson07: %s needs %s: try %s\n", verb, v.args, v.example)
		return 2
	}
	c := &client{base: "http://" + fs.Arg(1)}
	c.user, c.pass, _ = strings.Cut(*creds, ":")
	var err error
	switch repo := fs.Arg(2); verb {
	case "tags":
		err = c.tags(repo)
	case "manifest":
		err = c.manifest(repo, fs.Arg(3))
	case "blob":
		err = c.blob(repo, fs.Arg(3), *out)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		err = fmt.Errorf("no registry at %s (connection refused): start one with: docker-registry serve lessons/07-registries/registry.yml (in the lab one runs at 127.0.0.1:5000)", fs.Arg(1))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lesson07:", err)
		return 1
	}
	return 0
}

// tags prints GET /v2/<repo>/tags/list.
func (c *client) tags(repo string) error {
	resp, err := c.get("/v2/"+repo+"/tags/list", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var list struct{ Tags []string }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return err
	}
	fmt.Println(strings.Join(list.Tags, "\n"))
	return nil
}

// manifest fetches a manifest (or index) by tag or digest, checks its
// digest, and prints its media type, digest and body.
func (c *client) manifest(repo, ref string) error {
	resp, err := c.get("/v2/"+repo+"/manifests/"+ref, http.Header{"Accept": {strings.Join(accept, ", ")}})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20)) // a manifest is small: cap it
	if err != nil {
		return err
	}
	digest := sha256Of(body)
	// By digest, the bytes must hash to it. By tag, the registry's header
	// must agree with what we computed: never trust it alone.
	if strings.HasPrefix(ref, "sha256:") && ref != digest {
		return fmt.Errorf("digest mismatch: asked for %s, got %s", ref, digest)
	}
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" && h != digest {
		return fmt.Errorf("digest mismatch: registry says %s, content is %s", h, digest)
	}
	fmt.Printf("Content-Type: %s\nDigest: %s\n%s\n", resp.Header.Get("Content-Type"), digest, body)
	return nil
}

// blob downloads a blob while hashing it, and keeps it only if the hash is
// its name.
func (c *client) blob(repo, digest, out string) error {
	resp, err := c.get("/v2/"+repo+"/blobs/"+digest, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == "" {
		out = strings.TrimPrefix(digest, "sha256:")
	}
	tmp := out + ".partial"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), resp.Body)
	f.Close()
	if err == nil && "sha256:"+hex.EncodeToString(h.Sum(nil)) != digest {
		err = fmt.Errorf("digest mismatch: want %s, got sha256:%x", digest, h.Sum(nil))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	fmt.Printf("%s: %d bytes, verified\n", digest, n)
	return os.Rename(tmp, out)
}

// get makes a request; on a 401 it authenticates as the registry's
// WWW-Authenticate header says and tries once more.
func (c *client) get(path string, h http.Header) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequest(http.MethodGet, c.base+path, nil)
		if err != nil {
			return nil, err
		}
		for k, v := range h {
			req.Header[k] = v
		}
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		} else if c.user != "" && attempt > 0 {
			req.SetBasicAuth(c.user, c.pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "GET %s -> %s\n", req.URL, resp.Status)
		if resp.StatusCode == http.StatusOK {
			return resp, nil
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || attempt > 0 {
			return nil, fmt.Errorf("GET %s: %s", req.URL, resp.Status)
		}
		if err := c.login(resp.Header.Get("WWW-Authenticate")); err != nil {
			return nil, err
		}
	}
}

// login answers a challenge. "Basic ..." needs nothing more: the retry
// sends the credentials. "Bearer realm=R,service=S,scope=X" means: ask R
// for a token for S and X (with our credentials, if any), then send it.
func (c *client) login(challenge string) error {
	scheme, params, _ := strings.Cut(challenge, " ")
	if strings.EqualFold(scheme, "Basic") {
		if c.user == "" {
			return errors.New("the registry wants a user name and password (-u)")
		}
		return nil
	}
	p := map[string]string{}
	for _, kv := range strings.Split(params, ",") {
		k, v, _ := strings.Cut(kv, "=")
		p[strings.TrimSpace(k)] = strings.Trim(v, `"`)
	}
	u := p["realm"] + "?service=" + url.QueryEscape(p["service"]) + "&scope=" + url.QueryEscape(p["scope"])
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	fmt.Fprintf(os.Stderr, "GET %s -> %s\n", u, resp.Status)
	var tok struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"` // the OAuth2 spelling of the same
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("token: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
		return err
	}
	c.token = tok.Token
	if c.token == "" {
		c.token = tok.AccessToken
	}
	return nil
}

func sha256Of(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
