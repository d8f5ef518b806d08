package image

import (
	"strings"
	"testing"
)

// oneLine fails when err's message spans lines: minictr prints errors as
// "minictr: <error>", one line, and a newline from the input would let it
// forge a second.
func oneLine(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.ContainsAny(err.Error(), "\r\n") {
		t.Errorf("error of more than one line: %q", err)
	}
}

// sameRef fails unless a and b have the same fields.
func sameRef(t *testing.T, how string, a, b Reference) {
	t.Helper()
	if a.Registry != b.Registry || a.Repository != b.Repository || a.Tag != b.Tag || a.Digest != b.Digest {
		t.Errorf("%s: %+v, want %+v", how, b, a)
	}
}

// FuzzParseReference: a reference that parses is complete (registry,
// repository, a tag or a digest), in docker's grammar (lower-case path
// components), and its String() and its familiar form parse back to the same
// reference; one that does not gives a one-line error.
func FuzzParseReference(f *testing.F) {
	for _, s := range []string{
		"busybox", "busybox:1.36", "docker.io/library/busybox:latest", "index.docker.io/library/busybox",
		"127.0.0.1:5000/app:v1", "localhost/app", "[::1]:5000/a/b:c", "ghcr.io/a/b/c:x",
		"busybox@sha256:0000000000000000000000000000000000000000000000000000000000000000",
		"a:b@sha256:0000000000000000000000000000000000000000000000000000000000000000",
		"", " ", "UPPER/case", "a::b", "-x", "a/b:", ":tag", "a//b", "a\nb", "a:b\n", "docker.io/a__b/c-d.e",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseReference(s)
		if err != nil {
			oneLine(t, err)
			if !strings.HasPrefix(err.Error(), "invalid reference ") {
				t.Errorf("error %q does not start with \"invalid reference\"", err)
			}
			return
		}
		if r.Registry == "" || r.Repository == "" || r.Tag == "" && r.Digest == "" {
			t.Fatalf("ParseReference(%q) = %+v: incomplete", s, r)
		}
		for _, c := range strings.Split(r.Repository, "/") {
			if c == "" || strings.Trim(c, "abcdefghijklmnopqrstuvwxyz0123456789._-") != "" ||
				strings.Trim(c, "._-") != c {
				t.Errorf("ParseReference(%q): repository component %q outside docker's grammar", s, c)
			}
		}
		again, err := ParseReference(r.String())
		if err != nil {
			t.Fatalf("ParseReference(%q).String() = %q does not parse: %v", s, r.String(), err)
		}
		sameRef(t, "String() parsed again", r, again)
		fam := r.Familiar()
		if r.Tag != "" {
			fam += ":" + r.Tag
		}
		if r.Digest != "" {
			fam += "@" + r.Digest
		}
		short, err := ParseReference(fam)
		if err != nil {
			t.Fatalf("familiar form %q of %q does not parse: %v", fam, s, err)
		}
		sameRef(t, "familiar form parsed again", r, short)
	})
}

// FuzzParsePlatform: a --platform that parses has an OS and an
// architecture of letters, digits, '_', '-' and '.' (what containerd's
// parser takes, so nothing odd reaches an error message or a registry
// query), and reads the same written back; one that does not gives a
// one-line error.
func FuzzParsePlatform(f *testing.F) {
	for _, s := range []string{"linux/amd64", "linux/arm/v7", "linux/arm64/v8", "windows/amd64", "linux", "linux/amd64/",
		"/amd64", "linux//v7", "a/b/c/d", "lin ux/amd64", "linux\n/amd64", "linux/amd64\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePlatform(s)
		if err != nil {
			oneLine(t, err)
			return
		}
		for what, v := range map[string]string{"os": p.OS, "architecture": p.Architecture, "variant": p.Variant} {
			if v == "" && what != "variant" {
				t.Errorf("ParsePlatform(%q): empty %s", s, what)
			}
			if strings.Trim(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") != "" {
				t.Errorf("ParsePlatform(%q): %s %q has characters outside [A-Za-z0-9_.-]", s, what, v)
			}
		}
		if got := platformString(p); got != s {
			t.Errorf("ParsePlatform(%q) written back is %q", s, got)
		}
		again, err := ParsePlatform(platformString(p))
		if err != nil || again.OS != p.OS || again.Architecture != p.Architecture || again.Variant != p.Variant {
			t.Errorf("ParsePlatform(%q) = %+v; parsed again: %+v, %v", s, p, again, err)
		}
	})
}
