// Package depcheck holds the test that keeps minictr's layers honest: each
// stage stands alone, so a student can read one without the others.
package depcheck

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/minictr/minictr"

// rules: for each package prefix, the module packages it may import. Third
// party modules are listed by prefix too; the standard library is always
// allowed.
var rules = map[string][]string{
	// Stage packages: the standard library, x/sys, netlink, the trace leaf
	// and the one shared reader of the kernel's tables (internal/procfs);
	// never each other.
	"pkg/trace":       {},
	"internal/procfs": {},
	"pkg/chroot":      {"golang.org/x/sys", module + "/pkg/trace", module + "/internal/procfs"},
	"pkg/namespaces":  {"golang.org/x/sys", module + "/pkg/trace", module + "/pkg/namespaces", module + "/internal/procfs"},
	"pkg/cgroups":     {"golang.org/x/sys", module + "/pkg/trace", module + "/internal/procfs"},
	"pkg/privileges":  {"golang.org/x/sys", module + "/pkg/trace", module + "/internal/procfs"},
	"pkg/network":     {"golang.org/x/sys", "github.com/vishvananda/", module + "/pkg/trace", module + "/internal/procfs"},
	"pkg/netfilter":   {"golang.org/x/sys", "github.com/vishvananda/", "github.com/google/nftables", module + "/pkg/trace", module + "/internal/procfs"},
	// Images know nothing of namespaces or processes.
	"pkg/image": {"golang.org/x/sys", "golang.org/x/sync", "github.com/google/go-containerregistry", "github.com/opencontainers/",
		"github.com/klauspost/compress", "github.com/vbauerster/mpb", "github.com/schollz/progressbar", "github.com/docker/cli", "github.com/docker/docker-credential-helpers",
		module + "/pkg/trace", module + "/pkg/image", module + "/internal/atomicfile"},
	// Test support for images: builds test images and registries.
	"pkg/image/imagetest": {"golang.org/x/sys", "github.com/google/go-containerregistry", "github.com/rogpeppe/go-internal/testscript",
		module + "/internal/testenv", module + "/pkg/image"},
	// Lessons are standalone: the standard library and x/sys only.
	"lessons/": {"golang.org/x/sys"},
	// The lab VM's registry, and the test that runs the lessons' READMEs.
	"scripts/labregistry": {"github.com/google/go-containerregistry"},
	"internal/labtest":    {module + "/internal/testenv"},
}

// TestLayering lists every package's imports with `go list` and checks them
// against rules. No library package may import cobra: only cmd/ does.
func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"/...").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, imports := strings.TrimPrefix(fields[0], module+"/"), fields[1:]
		allowed, ruled := ruleFor(pkg)
		for _, imp := range imports {
			if !strings.HasPrefix(pkg, "cmd/") && strings.HasPrefix(imp, "github.com/spf13/cobra") {
				t.Errorf("%s imports %s: only cmd/ may use cobra", pkg, imp)
			}
			if ruled && !isStd(imp) && !hasAnyPrefix(imp, allowed) {
				t.Errorf("%s imports %s, outside its layer (allowed: %v)", pkg, imp, allowed)
			}
		}
	}
}

func ruleFor(pkg string) ([]string, bool) {
	best, found := "", false
	for prefix := range rules {
		if (pkg == prefix || strings.HasPrefix(pkg, strings.TrimSuffix(prefix, "/")+"/") || strings.HasPrefix(pkg, prefix)) && len(prefix) > len(best) {
			best, found = prefix, true
		}
	}
	return rules[best], found
}

// isStd: standard library import paths have no dot in their first element.
func isStd(imp string) bool {
	first, _, _ := strings.Cut(imp, "/")
	return !strings.Contains(first, ".")
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
