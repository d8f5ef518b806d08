package image

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
)

func TestSearchFiltersTheCatalog(t *testing.T) {
	host := startRegistry(t)
	for _, r := range []string{"/lib/busybox:1", "/lib/alpine:1", "/student/busybox-app:1"} {
		pushTo(t, host+r, busyboxImage(t, r))
	}
	got, err := NewClient(ClientOptions{}).Search(context.Background(), host+"/busybox", 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range got {
		names = append(names, r.Name)
	}
	want := host + "/lib/busybox " + host + "/student/busybox-app"
	if strings.Join(names, " ") != want {
		t.Errorf("Search = %v, want %s", names, want)
	}
}

// basicAuthRegistry is the in-process registry behind HTTP Basic auth, as
// docker-registry with an htpasswd file is.
func basicAuthRegistry(t *testing.T, user, pass string) string {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestLoginStoresCredentialsTheKeychainReads(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	host := basicAuthRegistry(t, "student", "s3cret")
	s := openStore(t)
	c := NewClient(ClientOptions{})

	if _, err := c.Login(context.Background(), host, "student", "wrong"); err == nil {
		t.Fatal("login with a wrong password succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err == nil {
		t.Error("a failed login wrote config.json")
	}
	// Before login, a push is refused.
	if err := s.Tag(context.Background(), mustPull(t, s), host+"/private/app:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Push(context.Background(), s, host+"/private/app:1", PushOptions{}); err == nil {
		t.Fatal("push without credentials succeeded")
	}
	login, err := c.Login(context.Background(), host, "student", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if login.Helper != "" || login.ConfigFile != filepath.Join(dir, "config.json") {
		t.Errorf("Login = %+v", login)
	}
	data, err := os.ReadFile(login.ConfigFile)
	if err != nil || !strings.Contains(string(data), `"`+host+`"`) || !strings.Contains(string(data), `"auth"`) {
		t.Fatalf("config.json = %s, %v", data, err)
	}
	// Push and pull now authenticate through the default keychain.
	if _, err := c.Push(context.Background(), s, host+"/private/app:1", PushOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := openStore(t).Pull(context.Background(), host+"/private/app:1", PullOptions{}); err != nil {
		t.Fatal(err)
	}
	if ok, err := c.Logout(host); !ok || err != nil {
		t.Fatalf("Logout = %v, %v", ok, err)
	}
	if ok, _ := c.Logout(host); ok {
		t.Error("second Logout found credentials")
	}
	if _, err := openStore(t).Pull(context.Background(), host+"/private/app:1", PullOptions{}); err == nil {
		t.Error("pull after logout succeeded")
	}
}

// mustPull puts the busybox test image in s and returns its reference.
func mustPull(t *testing.T, s *Store) string {
	host := startRegistry(t)
	ref := host + "/base/busybox:1"
	pushTo(t, ref, busyboxImage(t, "base"))
	if _, err := s.Pull(context.Background(), ref, PullOptions{}); err != nil {
		t.Fatal(err)
	}
	return ref
}
