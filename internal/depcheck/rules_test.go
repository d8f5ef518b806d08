package depcheck

import "slices"

// The layering of minictr, as tables. DESIGN.md says why; this file says
// exactly what, and depcheck_test.go checks every package against it.
//
// Names without a dot in their first element are packages of this module
// (written without the module path); names with one are third-party
// modules. Either covers the packages beneath it. The standard library is
// always allowed. Only non-test files count: a test may use whatever helps.

// stages are the packages that each teach one kernel feature. A stage
// never imports another stage: only pkg/container puts them together.
var stages = []string{
	"pkg/chroot",
	"pkg/namespaces",
	"pkg/cgroups",
	"pkg/privileges",
	"pkg/seccomp",
	"pkg/snapshot",
}

// leaves are what every stage may share: they import no stage themselves.
var leaves = []string{
	"pkg/trace",       // the --explain sink
	"pkg/resolve",     // the one answer to "where is this path inside the root?"
	"internal/procfs", // the one reader of the kernel's tables (mountinfo, /proc/PID/stat)
}

const xsys = "golang.org/x/sys"

// stage is what a stage may import: x/sys and the leaves.
var stage = slices.Concat(list(xsys), leaves)

// A rule says what a package, and every package beneath it that has no
// rule of its own, may import.
type rule struct {
	pkg string
	may []string
	why string
}

// rules: every package of the module falls under one (the longest match).
// A package with no rule fails the test: add one when you add a package.
var rules = []rule{
	// Leaves.
	{"pkg/trace", nil, "the sink every stage reports to: standard library only"},
	{"pkg/resolve", list(xsys, "github.com/cyphar/filepath-securejoin", "pkg/trace"), "resolves paths beneath or in a root for stages and images"},
	{"internal/procfs", list(xsys), "reads /proc tables for every stage; knows no stage"},
	{"internal/atomicfile", nil, "temp file + rename: standard library only"},
	{"internal/flock", list(xsys), "liveness by flock(2): owners hold, reclaimers try; knows no package of ours"},
	{"internal/claims", nil, "reads the lessons' claim indexes: standard library only"},
	{"internal/stringid", nil, "the 12-digit short IDs images, the engine and the CLI show: standard library only"},

	// Stages: the standard library, x/sys and the leaves; never each other,
	// never images, never cobra.
	{"pkg/chroot", stage, "a stage"},
	{"pkg/namespaces", stage, "a stage"},
	{"pkg/namespaces/nsenter", slices.Concat(stage, list("pkg/namespaces")), "the cgo half of joining namespaces: its own stage's helper"},
	{"pkg/cgroups", stage, "a stage"},
	{"pkg/privileges", stage, "a stage"},
	{"pkg/seccomp", stage, "a stage: its own BPF compiler, so no cgo libseccomp and no third-party assembler"},
	{"pkg/snapshot", stage, "a stage: a container's root as []Mount"},

	// Images know nothing of namespaces or processes.
	{"pkg/image", list(xsys, "golang.org/x/sync", "github.com/google/go-containerregistry", "github.com/opencontainers",
		"github.com/klauspost/compress", "github.com/docker/cli", "github.com/docker/docker-credential-helpers", "github.com/docker/go-units",
		"pkg/image", "pkg/trace", "pkg/resolve", "internal/atomicfile", "internal/stringid",
		"internal/flock"), "references, registries, the content store (flock: who holds its work directories and leases)"},
	{"pkg/image/layer", list(xsys, "pkg/trace", "pkg/resolve"), "safe unpacking: tar in, files out; knows no registry"},

	// The engine: the only package where stages meet.
	{"pkg/container", slices.Concat(stages, stage, list("pkg/image", "internal/atomicfile", "internal/stringid", "internal/flock")), "composes the stages into a container's life"},

	// The CLI: the only cobra user; it wires and renders, it does not compose.
	{"cmd", list(xsys, "github.com/spf13/cobra", "github.com/vbauerster/mpb", "github.com/docker/go-units", "github.com/google/go-containerregistry/pkg/v1",
		"cmd", "pkg/container", "pkg/image", "pkg/trace", "pkg/cgroups", "internal/atomicfile", "internal/stringid"), "thin verbs: flags -> options -> one library call -> render"},

	// Lessons stand alone: a student reads one main.go and nothing else.
	{"lessons", list(xsys), "standard library and x/sys only"},

	// Test support and commands.
	{"internal/testenv", list(xsys, "github.com/rogpeppe/go-internal/testscript", "internal/procfs"), "test support every test shares"},
	{"internal/imagetest", list(xsys, "github.com/google/go-containerregistry", "github.com/rogpeppe/go-internal/testscript", "internal/testenv"),
		"test support for images; never pkg/image, so that pkg/image's own tests can use it"},
	{"internal/hostilegen", nil, "the command that writes testdata/hostile"},
	{"internal/depcheck", nil, "this test"},
	{"internal/vmtest", nil, "tests run in the lab VM"},
	{"internal/securitytest", list(xsys), "the probe the security corpus runs inside a container: a static command"},
	{"internal/labtest", nil, "runs the lessons' README steps, in the lab and on the host"},
	{"internal/exercisecheck", nil, "keeps the lessons' exercises in step with their main.go"},
	{"scripts", list("internal/testenv"), "commands of the scripts (mkrootfs)"},
	{"scripts/labregistry", list("github.com/google/go-containerregistry"), "the lab's registry on 127.0.0.1:5000"},
}

// cobraUsers: only the CLI may import cobra, whatever a rule above says.
const cobra = "github.com/spf13/cobra"

var cobraUsers = []string{"cmd"}

// composers: the only packages that may import two stages or more.
var composers = []string{"pkg/container"}

// Library code never writes to the terminal and never exits: it returns
// errors and takes an io.Writer, a progress sink or a tracer. These are the
// references that break the rule, by import path.
var noisy = map[string][]string{
	"os":                    {"Stdout", "Stderr", "Exit"},
	"syscall":               {"Exit"},
	"golang.org/x/sys/unix": {"Exit"},
	"log":                   {"Fatal", "Fatalf", "Fatalln", "Panic", "Panicf", "Panicln", "Print", "Printf", "Println"},
	"fmt":                   {"Print", "Printf", "Println"},
	"":                      {"print", "println"}, // the builtins, which write to stderr
}

// quietTrees are where library packages live. Commands (package main) and
// the test support below are not libraries.
var quietTrees = []string{"pkg", "internal"}

var testSupport = []string{
	"internal/testenv",   // the leak check prints what leaked and exits
	"internal/imagetest", // testscript commands
	"internal/depcheck",  // this test
	"internal/vmtest",    // tests run in the lab VM
}

// An exception lets one file of a library use one noisy reference, for a
// reason. An exception that matches nothing fails the test, so that the
// list stays true.
type exception struct {
	file string // relative to the module root
	use  string // "os.Stderr"
	why  string
}

var exceptions = []exception{
	{"pkg/container/init.go", "os.Stderr",
		"the container init is a process of its own (InitMain returns its exit status to main); " +
			"when the handshake itself fails there is no engine to report to, and its stderr is the container's"},
	{"pkg/namespaces/nsenter/nsenter.go", "os.Stdout",
		"Run is the body of the re-executed nsenter process: the command it starts inherits that process's stdio"},
	{"pkg/namespaces/nsenter/nsenter.go", "os.Stderr", "as above"},
}

// list returns its arguments as a slice, for readable tables.
func list(names ...string) []string { return names }
