package cli

import (
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/minictr/minictr/internal/imagetest"
	"github.com/minictr/minictr/internal/testenv"
)

// TestImageScripts runs the image verbs against registries the scripts
// start: "registry" (go-containerregistry's, in this process) and
// "docker-registry" (Debian's, a real distribution server, optionally with
// an htpasswd file); see internal/imagetest.
func TestImageScripts(t *testing.T) {
	p := testenv.Params("testdata/image")
	p.Cmds = imagetest.Commands()
	p.Condition = imagetest.Condition(p.Condition)
	testscript.Run(t, p)
}

// TestImageColumns pins the SIZE and CREATED columns to what docker prints
// for the same values (go-units, three significant digits for sizes).
func TestImageColumns(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 999: "999B", 1000: "1kB", 2_345_678: "2.35MB", 4_200_000_000: "4.2GB"} {
		if got := displaySize(n); got != want {
			t.Errorf("displaySize(%d) = %q, want %q", n, got, want)
		}
	}
	now := time.Now()
	for ago, want := range map[time.Duration]string{
		30 * time.Second:         "30 seconds ago",
		90 * time.Second:         "About a minute ago",
		3 * time.Hour:            "3 hours ago",
		10 * 24 * time.Hour:      "10 days ago",
		400 * 24 * time.Hour:     "13 months ago",
		3 * 365 * 24 * time.Hour: "3 years ago",
	} {
		if got := createdSince(now.Add(-ago)); got != want {
			t.Errorf("createdSince(now - %v) = %q, want %q", ago, got, want)
		}
	}
	if got := createdSince(time.Time{}); got != "N/A" {
		t.Errorf("createdSince(zero) = %q, want N/A", got)
	}
}

// TestFamiliar: rmi's "Untagged:" lines use docker's short names.
func TestFamiliar(t *testing.T) {
	for in, want := range map[string]string{
		"docker.io/library/busybox:latest": "busybox:latest",
		"docker.io/student/app:v1":         "student/app:v1",
		"127.0.0.1:5000/library/busybox:1": "127.0.0.1:5000/library/busybox:1",
		"quay.io/x/y:z":                    "quay.io/x/y:z",
	} {
		if got := familiarString(in); got != want {
			t.Errorf("familiarString(%q) = %q, want %q", in, got, want)
		}
	}
}
