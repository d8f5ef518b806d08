package container

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/minictr/minictr/pkg/privileges"
	"github.com/minictr/minictr/pkg/seccomp"
)

// The engine keeps a compiled filter and reads it back on the next start
// with the same profile and capabilities; any other input compiles anew.
func TestCompileSeccompCache(t *testing.T) {
	caps, err := privileges.Capabilities(nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "seccomp")
	first := <-compileSeccomp(nil, nil, "default", caps, true, dir)
	if first.err != nil || first.cached || first.cache == "" {
		t.Fatalf("first compile: %+v", first)
	}
	again := <-compileSeccomp(nil, nil, "default", caps, true, dir)
	if again.err != nil || !again.cached || !bytes.Equal(again.program, first.program) {
		t.Fatalf("second start: cached %v, same program %v, %v", again.cached, bytes.Equal(again.program, first.program), again.err)
	}
	// Fewer capabilities: docker's profile refuses more (clone with
	// namespace flags without CAP_SYS_ADMIN is already refused; without
	// CAP_SYS_CHROOT, chroot is), so another filter.
	other := <-compileSeccomp(nil, nil, "default", []string{"CAP_CHOWN"}, true, dir)
	if other.err != nil || other.cached || bytes.Equal(other.program, first.program) {
		t.Fatalf("other capabilities: cached %v, same program %v, %v", other.cached, bytes.Equal(other.program, first.program), other.err)
	}
	// A profile file is keyed by its content.
	source := []byte(`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}`)
	p, err := seccomp.Parse(source)
	if err != nil {
		t.Fatal(err)
	}
	custom := <-compileSeccomp(p, source, "custom", caps, true, dir)
	if custom.err != nil || custom.cached {
		t.Fatalf("custom profile: %+v", custom)
	}
	// A damaged cache entry is compiled again, not trusted.
	if err := os.WriteFile(first.cache, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	repaired := <-compileSeccomp(nil, nil, "default", caps, true, dir)
	if repaired.err != nil || repaired.cached || !bytes.Equal(repaired.program, first.program) {
		t.Fatalf("after damage: %+v", repaired.cached)
	}
	// A profile the init cannot start under is never kept.
	bad := []byte(`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["execve"], "action": "SCMP_ACT_ERRNO"}]}`)
	if p, err = seccomp.Parse(bad); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if c := <-compileSeccomp(p, bad, "bad", caps, true, dir); c.err == nil || c.cached {
			t.Fatalf("a profile that blocks execve: %+v", c)
		}
	}
}

// BenchmarkSeccompFilter is the engine's share of the seccomp wall: a
// compile (first start) and a read of the kept filter (every other one).
func BenchmarkSeccompFilter(b *testing.B) {
	caps, err := privileges.Capabilities(nil, nil, false)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("compile", func(b *testing.B) {
		for b.Loop() {
			if c := <-compileSeccomp(nil, nil, "default", caps, true, filepath.Join(b.TempDir(), "seccomp")); c.err != nil {
				b.Fatal(c.err)
			}
		}
	})
	b.Run("kept", func(b *testing.B) {
		dir := filepath.Join(b.TempDir(), "seccomp")
		<-compileSeccomp(nil, nil, "default", caps, true, dir)
		for b.Loop() {
			if c := <-compileSeccomp(nil, nil, "default", caps, true, dir); c.err != nil || !c.cached {
				b.Fatal(c.err)
			}
		}
	})
}
