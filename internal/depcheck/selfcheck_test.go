package depcheck

import (
	"slices"
	"strings"
	"testing"
)

// The checks must be able to fail: each is run here on a small made-up
// input that breaks its rule, and on one that keeps it.

func TestImportProblemsFindsEachKindOfBreak(t *testing.T) {
	m := func(p string) string { return module + "/" + p }
	pkgs := []pkg{
		{ImportPath: m("pkg/chroot"), Imports: []string{"fmt", m("pkg/trace"), xsys + "/unix"}},                  // fine
		{ImportPath: m("pkg/cgroups"), Imports: []string{m("pkg/chroot")}},                                       // a stage imports a stage
		{ImportPath: m("pkg/image"), Imports: []string{m("pkg/namespaces")}},                                     // images know no namespaces
		{ImportPath: m("pkg/image/layer"), Imports: []string{"github.com/spf13/cobra"}},                          // cobra outside cmd/
		{ImportPath: m("cmd/minictr/cli"), Imports: []string{"github.com/spf13/cobra", m("pkg/container")}},      // fine
		{ImportPath: m("cmd/minictr/cli"), Imports: []string{m("pkg/cgroups"), m("pkg/chroot")}},                 // composition in cmd/
		{ImportPath: m("pkg/container"), Imports: []string{m("pkg/cgroups"), m("pkg/chroot"), m("pkg/image")}},   // fine: the engine
		{ImportPath: m("lessons/01-chroot"), Imports: []string{"github.com/google/go-containerregistry/pkg/v1"}}, // lessons stand alone
		{ImportPath: m("pkg/newthing"), Imports: nil},                                                            // no rule
	}
	got := importProblems(rules, pkgs)
	want := []string{
		"pkg/cgroups imports pkg/chroot, outside its layer",
		"pkg/image imports pkg/namespaces, outside its layer",
		"pkg/image/layer imports github.com/spf13/cobra: only [cmd] may use cobra",
		"cmd/minictr/cli imports pkg/chroot, outside its layer",
		"cmd/minictr/cli imports the stages [pkg/cgroups pkg/chroot]: only [pkg/container] may put stages together",
		"lessons/01-chroot imports github.com/google/go-containerregistry/pkg/v1, outside its layer",
		"pkg/newthing has no rule",
	}
	if len(got) != len(want) {
		t.Errorf("got %d problems, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, w) }) {
			t.Errorf("no problem starts with %q in:\n%s", w, strings.Join(got, "\n"))
		}
	}
}

func TestRuleForPicksTheLongestMatch(t *testing.T) {
	for p, want := range map[string]string{
		"pkg/image":              "pkg/image",
		"pkg/image/layer":        "pkg/image/layer",
		"pkg/image/layer/x":      "pkg/image/layer",
		"pkg/namespaces/nsenter": "pkg/namespaces/nsenter",
		"cmd/minictr":            "cmd",
		"lessons/07-registries":  "lessons",
	} {
		if r, ok := ruleFor(rules, p); !ok || r.pkg != want {
			t.Errorf("ruleFor(%q) = %q, %v; want %q", p, r.pkg, ok, want)
		}
	}
	// pkg/imagefoo is not beneath pkg/image.
	if r, ok := ruleFor(rules, "pkg/imagefoo"); ok {
		t.Errorf("ruleFor(pkg/imagefoo) = %q, want no rule", r.pkg)
	}
}

func TestMissingPackagesNamesRulesWithoutAPackage(t *testing.T) {
	pkgs := []pkg{{ImportPath: module + "/pkg/trace"}}
	rs := []rule{{pkg: "pkg/trace"}, {pkg: "pkg/ghost", may: list(xsys, "pkg/phantom")}}
	got := strings.Join(missingPackages(rs, pkgs), "\n")
	for _, w := range []string{"the rules name pkg/ghost, which is no package", "the rules name pkg/phantom, which is no package"} {
		if !strings.Contains(got, w) {
			t.Errorf("problems do not say %q:\n%s", w, got)
		}
	}
	for _, w := range []string{"pkg/trace,", xsys} {
		if strings.Contains(got, w) {
			t.Errorf("problems name %s, which is fine:\n%s", w, got)
		}
	}
}

func TestGoListFailureIsAnError(t *testing.T) {
	if _, err := goList(module + "/no/such/package"); err == nil {
		t.Fatal("go list of a package that does not exist gave no error")
	}
}

const noisySource = `package x

import (
	"fmt"
	"io"
	stdlog "log"
	o "os"
)

func f(w io.Writer) {
	fmt.Fprintln(w, "fine: a writer the caller gave")
	fmt.Fprintln(o.Stderr, "line 12")
	fmt.Println("line 13")
	stdlog.Fatalf("line 14")
	println("line 15")
	o.Exit(16)
	var os struct{ Stdout int }
	_ = os.Stdout // a local variable: fine
	_ = fmt.Sprint("fine")
}
`

func TestNoisyUsesFindsTerminalAndExit(t *testing.T) {
	uses, err := noisyUses("x.go", noisySource)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range uses {
		got = append(got, u.String())
	}
	want := []string{"x.go:12: os.Stderr", "x.go:13: fmt.Println", "x.go:14: log.Fatalf", "x.go:15: println", "x.go:16: os.Exit"}
	if !slices.Equal(got, want) {
		t.Errorf("noisyUses = %q\nwant        %q", got, want)
	}
}

func TestUnexcusedReportsUsesAndStaleExceptions(t *testing.T) {
	uses := []use{{file: "pkg/a/a.go", line: 3, name: "os.Stdout"}, {file: "pkg/b/b.go", line: 7, name: "os.Exit"}}
	exc := []exception{{file: "pkg/a/a.go", use: "os.Stdout", why: "test"}, {file: "pkg/c/c.go", use: "os.Stderr", why: "stale"}}
	got := unexcused(uses, exc)
	if len(got) != 2 || !strings.HasPrefix(got[0], "pkg/b/b.go:7: os.Exit: library code never") ||
		!strings.HasPrefix(got[1], "exception os.Stderr in pkg/c/c.go matches nothing") {
		t.Errorf("unexcused = %q", got)
	}
}

func TestIsLibrary(t *testing.T) {
	for _, c := range []struct {
		p    pkg
		want bool
	}{
		{pkg{ImportPath: module + "/pkg/image", Name: "image"}, true},
		{pkg{ImportPath: module + "/internal/atomicfile", Name: "atomicfile"}, true},
		{pkg{ImportPath: module + "/internal/hostilegen", Name: "main"}, false},
		{pkg{ImportPath: module + "/internal/testenv", Name: "testenv"}, false},
		{pkg{ImportPath: module + "/cmd/minictr/cli", Name: "cli"}, false},
	} {
		if got := isLibrary(c.p); got != c.want {
			t.Errorf("isLibrary(%s) = %v, want %v", c.p.ImportPath, got, c.want)
		}
	}
}
