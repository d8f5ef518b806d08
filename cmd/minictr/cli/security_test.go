package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/minictr/minictr/internal/testenv"
)

// The security corpus: testdata/security/*.txtar, one script per way out of
// a container, each proving the way is blocked in a default container, with
// a positive control (the wall off — --privileged, --cap-add, or the kernel
// feature used outside any container — and the escape works) and the exact
// errno. The README's "Security walls" table names them.
const securityDir = "testdata/security"

func TestSecurity(t *testing.T) {
	testscript.Run(t, securityParams(t))
}

// securityParams are testenv's parameters for the corpus, plus $PROBE (the probe program on the host, also copied to /probe in
// $ROOTFS) and the condition [probe], false where it could not be built.
func securityParams(t *testing.T) testscript.Params {
	files, err := filepath.Glob(filepath.Join(securityDir, "*.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no scripts in %s", securityDir)
	}
	p := testenv.Params("")
	p.Files = files
	probe, probeErr := buildProbe(t)
	p.Condition = func(cond string) (bool, error) {
		if cond == "probe" {
			return probeErr == nil, nil
		}
		return testenv.Condition(cond)
	}
	p.Setup = func(env *testscript.Env) error {
		if err := testenv.Setup(env); err != nil {
			return err
		}
		if probeErr != nil {
			return nil
		}
		env.Setenv("PROBE", probe)
		if rootfs := env.Getenv("ROOTFS"); rootfs != "" {
			data, err := os.ReadFile(probe)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(rootfs, "probe"), data, 0o755)
		}
		return nil
	}
	return p
}

// buildProbe compiles internal/securitytest/probe statically (the root
// filesystem has no libc). Every script needs root, so as another user, or
// without a Go toolchain (the lab VM), it builds nothing and the scripts
// that need it skip on [!probe].
func buildProbe(t *testing.T) (string, error) {
	if !testenv.IsRoot() {
		return "", fmt.Errorf("needs root")
	}
	if _, err := exec.LookPath("go"); err != nil {
		return "", fmt.Errorf("no go toolchain to build the probe: %w", err)
	}
	bin := filepath.Join(t.TempDir(), "probe")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/minictr/minictr/internal/securitytest/probe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build probe: %w\n%s", err, out)
	}
	return bin, nil
}
