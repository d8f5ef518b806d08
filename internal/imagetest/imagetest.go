// Package imagetest gives testscripts registries to talk to: go-containerregistry's
// in-process registry (optionally behind token auth, as Docker Hub is) and
// Debian's docker-registry (optionally behind htpasswd), both on 127.0.0.1,
// and a command that pushes a busybox image built from $ROOTFS.
//
// It also reads the table of hostile layer fixtures (testdata/hostile), for
// the tests of pkg/image and pkg/image/layer: it never imports pkg/image, so
// that pkg/image's own tests can import it.
//
// It is for tests only: the CLI's scripts and lesson 07's use it.
package imagetest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/rogpeppe/go-internal/testscript"
)

// Commands are the testscript commands:
//
//	registry [-token USER:PASS]   in-process registry, seeded with library/busybox:latest; sets $REGISTRY
//	docker-registry [USER:PASS]   Debian's docker-registry on a free port; sets $REGISTRY
//	seed REF [MARKER [USER:PASS]] push a busybox image (from $ROOTFS) with MARKER in /etc/marker
func Commands() map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	return map[string]func(ts *testscript.TestScript, neg bool, args []string){
		"registry":        cmdRegistry,
		"docker-registry": cmdDockerRegistry,
		"seed":            cmdSeed,
	}
}

// Condition adds [exec:NAME] (NAME is in $PATH) to another condition func.
func Condition(next func(string) (bool, error)) func(string) (bool, error) {
	return func(c string) (bool, error) {
		if bin, ok := strings.CutPrefix(c, "exec:"); ok {
			_, err := exec.LookPath(bin)
			return err == nil, nil
		}
		return next(c)
	}
}

// cmdRegistry starts go-containerregistry's registry on 127.0.0.1, sets
// $REGISTRY to its host:port, and seeds it with library/busybox:latest.
// With -token USER:PASS it answers like Docker Hub: 401 with a Bearer
// challenge, and tokens from /token for those credentials.
func cmdRegistry(ts *testscript.TestScript, neg bool, args []string) {
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	creds := ""
	if len(args) == 2 && args[0] == "-token" {
		creds = args[1]
		user, pass, _ := strings.Cut(creds, ":")
		h = &tokenAuth{next: h, user: user, pass: pass, token: fmt.Sprintf("tok-%d", time.Now().UnixNano())}
	}
	srv := httptest.NewServer(h)
	ts.Defer(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	if t, ok := h.(*tokenAuth); ok {
		t.realm = srv.URL + "/token"
	}
	ts.Setenv("REGISTRY", host)
	cmdSeed(ts, false, []string{host + "/library/busybox:latest", "busybox", creds})
}

// tokenAuth is the token flow of the distribution spec in front of a
// registry: requests without the token get a 401 whose WWW-Authenticate
// header says where to get one; /token hands it out for USER:PASS.
type tokenAuth struct {
	next              http.Handler
	user, pass, token string
	realm             string
}

func (t *tokenAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		if u, p, ok := r.BasicAuth(); !ok || u != t.user || p != t.pass {
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"token":%q,"expires_in":300}`, t.token)
		return
	}
	if r.Header.Get("Authorization") == "Bearer "+t.token {
		t.next.ServeHTTP(w, r)
		return
	}
	challenge := fmt.Sprintf(`Bearer realm=%q,service="minictr-test"`, t.realm)
	if repo := repoOf(r.URL.Path); repo != "" {
		challenge += fmt.Sprintf(`,scope="repository:%s:pull"`, repo)
	}
	w.Header().Set("WWW-Authenticate", challenge)
	http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
}

// repoOf finds the repository in /v2/<repo>/{manifests,blobs,tags}/...
func repoOf(path string) string {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return ""
	}
	for _, kind := range []string{"/manifests/", "/blobs/", "/tags/"} {
		if i := strings.Index(rest, kind); i > 0 {
			return rest[:i]
		}
	}
	return ""
}

// cmdSeed pushes an image made from $ROOTFS (the busybox root filesystem)
// to the reference given: `seed REF [MARKER]`. The marker goes to
// /etc/marker in a second layer, so that two seeds share the base layer.
func cmdSeed(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 1 {
		ts.Fatalf("usage: seed REF [MARKER] [user:pass]")
	}
	rootfs := ts.Getenv("ROOTFS")
	if rootfs == "" {
		ts.Fatalf("seed needs $ROOTFS (busybox-static)")
	}
	base, err := dirLayer(rootfs)
	ts.Check(err)
	marker := "busybox"
	if len(args) > 1 {
		marker = args[1]
	}
	top, err := filesLayer(map[string]string{"etc/marker": marker + "\n"})
	ts.Check(err)
	// An OCI image, as buildkit and podman make today (ggcr's default is
	// docker's format).
	img, err := mutate.AppendLayers(mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1), base, top)
	ts.Check(err)
	cf, err := img.ConfigFile()
	ts.Check(err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Created = v1.Time{Time: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)}
	cf.Config.Cmd = []string{"sh"}
	cf.Config.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cf.History = []v1.History{
		{Created: cf.Created, CreatedBy: "/bin/sh -c #(nop) ADD busybox rootfs"},
		{Created: cf.Created, CreatedBy: "/bin/sh -c echo " + marker + " > /etc/marker"},
		{Created: cf.Created, CreatedBy: `/bin/sh -c #(nop)  CMD ["sh"]`, EmptyLayer: true},
	}
	img, err = mutate.ConfigFile(img, cf)
	ts.Check(err)
	ref, err := name.ParseReference(args[0])
	ts.Check(err)
	opts := []remote.Option{}
	if len(args) > 2 && args[2] != "" {
		user, pass, _ := strings.Cut(args[2], ":")
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: user, Password: pass}))
	}
	ts.Check(remote.Write(ref, img, opts...))
}

// dirLayer makes a layer of a directory tree (files, dirs, symlinks).
func dirLayer(dir string) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if d.Type()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		hdr.Name = rel
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		hdr.ModTime = time.Unix(0, 0)
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.Type().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			_, err = tw.Write(data)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	tw.Close()
	return layerOf(buf.Bytes())
}

func filesLayer(files map[string]string) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for n, c := range files {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(c)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)})
		tw.Write([]byte(c))
	}
	tw.Close()
	return layerOf(buf.Bytes())
}

func layerOf(data []byte) (v1.Layer, error) {
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer))
}

// cmdDockerRegistry starts Debian's docker-registry on a free port of
// 127.0.0.1 with its storage in $WORK, sets $REGISTRY, and stops it at the
// end of the script: `docker-registry [USER:PASSWORD]` adds htpasswd auth.
func cmdDockerRegistry(ts *testscript.TestScript, neg bool, args []string) {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		ts.Fatalf("docker-registry not installed (apt-get install docker-registry)")
	}
	dir := ts.MkAbs(fmt.Sprintf("docker-registry-%d", time.Now().UnixNano()))
	ts.Check(os.MkdirAll(dir, 0o755))
	auth := ""
	if len(args) == 1 {
		user, pass, _ := strings.Cut(args[0], ":")
		out, err := exec.Command("htpasswd", "-Bbn", user, pass).Output()
		if err != nil {
			ts.Fatalf("htpasswd (apache2-utils): %v", err)
		}
		ts.Check(os.WriteFile(filepath.Join(dir, "htpasswd"), out, 0o600))
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: minictr-test\n    path: %s\n", filepath.Join(dir, "htpasswd"))
	}
	// The free port we find may be taken again before the registry binds
	// it (another test is doing the same): then try another.
	for attempt := 1; ; attempt++ {
		addr, err := startDockerRegistry(ts, bin, dir, auth)
		if err == nil {
			ts.Setenv("REGISTRY", addr)
			return
		}
		if attempt == 3 {
			ts.Fatalf("docker-registry: %v", err)
		}
	}
}

func startDockerRegistry(ts *testscript.TestScript, bin, dir, auth string) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	l.Close()
	config := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n%s",
		filepath.Join(dir, "data"), addr, auth)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(config), 0o644); err != nil {
		return "", err
	}
	logf, err := os.OpenFile(filepath.Join(dir, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return "", err
	}
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Kill() // our own child, by PID
		<-exited
		logf.Close()
	}
	for i := 0; i < 100; i++ {
		select {
		case err := <-exited:
			logf.Close()
			return "", fmt.Errorf("exited on %s: %v (see %s)", addr, err, filepath.Join(dir, "log"))
		case <-time.After(50 * time.Millisecond):
		}
		if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			ts.Defer(stop)
			return addr, nil
		}
	}
	stop()
	return "", fmt.Errorf("did not answer on %s", addr)
}
