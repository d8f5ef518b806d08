package image

import "testing"

func TestParseReferenceNormalizes(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                         "docker.io/library/busybox:latest",
		"busybox:1.36":                    "docker.io/library/busybox:1.36",
		"student/app":                     "docker.io/student/app:latest",
		"docker.io/busybox":               "docker.io/library/busybox:latest",
		"index.docker.io/library/busybox": "docker.io/library/busybox:latest",
		"127.0.0.1:5000/app:v1":           "127.0.0.1:5000/app:v1",
		"localhost/app":                   "localhost/app:latest",
		"ghcr.io/a/b/c:x":                 "ghcr.io/a/b/c:x",
		"busybox@sha256:0000000000000000000000000000000000000000000000000000000000000000": "docker.io/library/busybox@sha256:0000000000000000000000000000000000000000000000000000000000000000",
	} {
		r, err := ParseReference(in)
		if err != nil {
			t.Errorf("ParseReference(%q): %v", in, err)
			continue
		}
		if r.String() != want {
			t.Errorf("ParseReference(%q) = %q, want %q", in, r.String(), want)
		}
	}
}

func TestParseReferenceRejects(t *testing.T) {
	for _, in := range []string{"", " ", "UPPER/case", "a::b", "busybox@sha256:12", "-x", "a/b:", ":tag"} {
		if r, err := ParseReference(in); err == nil {
			t.Errorf("ParseReference(%q) = %q, want an error", in, r)
		}
	}
}

func TestFamiliar(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":               "busybox",
		"student/app":           "student/app",
		"127.0.0.1:5000/app:v1": "127.0.0.1:5000/app",
	} {
		r, _ := ParseReference(in)
		if r.Familiar() != want {
			t.Errorf("%q.Familiar() = %q, want %q", in, r.Familiar(), want)
		}
	}
}

func TestInsecureDefaults(t *testing.T) {
	for reg, want := range map[string]bool{
		"127.0.0.1:5000": true, "127.3.4.5": true, "[::1]:5000": true, "localhost:5000": true,
		"docker.io": false, "10.0.0.1:5000": false, "example.com:5000": false,
	} {
		if got := isInsecure(reg, nil); got != want {
			t.Errorf("isInsecure(%q) = %v, want %v", reg, got, want)
		}
	}
	if !isInsecure("example.com:5000", []string{"example.com:5000"}) {
		t.Error("--insecure-registry not honoured")
	}
}
