package container

import (
	"errors"
	"os"
	"reflect"
	"testing"
)

func TestMergeFollowsDocker(t *testing.T) {
	str := func(s string) *string { return &s }
	img := ImageConfig{
		Entrypoint: []string{"/entry.sh"},
		Cmd:        []string{"serve", "--port", "80"},
		Env:        []string{"PATH=/bin", "MODE=prod"},
		WorkingDir: "/app",
		User:       "www",
	}
	for _, tc := range []struct {
		name       string
		img        ImageConfig
		args       []string
		entrypoint *string
		want       []string
	}{
		{"image defaults", img, nil, nil, []string{"/entry.sh", "serve", "--port", "80"}},
		{"args replace Cmd", img, []string{"migrate"}, nil, []string{"/entry.sh", "migrate"}},
		{"--entrypoint drops Cmd", img, nil, str("sh"), []string{"sh"}},
		{"--entrypoint with args", img, []string{"-c", "id"}, str("sh"), []string{"sh", "-c", "id"}},
		{"--entrypoint '' clears it", img, []string{"ls"}, str(""), []string{"ls"}},
		{"Cmd only", ImageConfig{Cmd: []string{"sh"}}, nil, nil, []string{"sh"}},
	} {
		p := Process{Args: tc.args}
		if err := tc.img.Merge(&p, tc.entrypoint); err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(p.Args, tc.want) {
			t.Errorf("%s: Args = %q, want %q", tc.name, p.Args, tc.want)
		}
	}

	p := Process{Env: []string{"MODE=dev"}, Workdir: "/tmp", User: "1000"}
	if err := img.Merge(&p, nil); err != nil {
		t.Fatal(err)
	}
	if got := containerEnv(p.Env, "h", "/"); !reflect.DeepEqual(got, []string{"PATH=/bin", "HOSTNAME=h", "MODE=dev", "HOME=/"}) {
		t.Errorf("env = %q", got)
	}
	if p.Workdir != "/tmp" || p.User != "1000" {
		t.Errorf("workdir, user = %q, %q", p.Workdir, p.User)
	}
	p = Process{}
	if err := img.Merge(&p, nil); err != nil || p.Workdir != "/app" || p.User != "www" {
		t.Errorf("image defaults: workdir, user = %q, %q (%v), want /app, www", p.Workdir, p.User, err)
	}

	empty := ""
	if err := img.Merge(&Process{}, &empty); !errors.Is(err, ErrNoCommand) {
		t.Errorf("no command: err = %v", err)
	}
}

// TestCheckInside: the working directory resolves as the container will see
// it, with ".." and absolute links held in the root (as docker does, and as
// the kernel does after pivot_root); only what cannot be a directory fails.
func TestCheckInside(t *testing.T) {
	root := t.TempDir()
	mustSymlink(t, "../../../..", root+"/up")
	mustSymlink(t, "/etc", root+"/abs")
	mustSymlink(t, "loop", root+"/loop")
	if err := os.WriteFile(root+"/file", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for path, ok := range map[string]bool{
		"/srv/new": true, "/abs/x": true, "/up": true /* the root itself */, "/up/etc": true, "/../x": true, "/loop": false, "/file/x": false,
	} {
		if err := checkInside(root, path); (err == nil) != ok {
			t.Errorf("checkInside(%q) = %v, want ok=%v", path, err, ok)
		}
	}
}

func mustSymlink(t *testing.T, target, name string) {
	t.Helper()
	if err := os.Symlink(target, name); err != nil {
		t.Fatal(err)
	}
}
