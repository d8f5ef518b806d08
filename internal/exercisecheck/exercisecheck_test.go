package exercisecheck

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// lessonsDir is the lessons' folder, seen from this package's directory
// (where go test runs a test).
const lessonsDir = "../../lessons"

// A hole is lines [start, end] of an exercise (0-based, inclusive): from its
// `// TODO(N):` comment down to the line holding the message "TODO N:".
type hole struct {
	n          int
	start, end int
}

var todoComment = regexp.MustCompile(`^\s*// TODO\((\d+)\):`)

// holes finds an exercise's holes. They are numbered 1, 2, 3… in the order
// they appear, and each ends at a line with its own "TODO N:" message, so
// that a student who runs an unfinished exercise reads which hole stopped it.
func holes(lines []string) ([]hole, error) {
	var out []hole
	for i := 0; i < len(lines); i++ {
		m := todoComment.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		if n != len(out)+1 {
			return nil, fmt.Errorf("line %d: TODO(%d) where TODO(%d) comes next: number the holes 1, 2, 3… in order", i+1, n, len(out)+1)
		}
		msg := fmt.Sprintf(`"TODO %d:`, n)
		end := -1
		for j := i + 1; j < len(lines); j++ {
			if todoComment.MatchString(lines[j]) {
				break
			}
			if strings.Contains(lines[j], msg) {
				end = j
				break
			}
		}
		if end < 0 {
			return nil, fmt.Errorf("line %d: TODO(%d) has no line below it that fails with %s…\" (a panic or an error)", i+1, n, msg)
		}
		out = append(out, hole{n, i, end})
		i = end
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no holes: an exercise has at least one // TODO(1): comment")
	}
	return out, nil
}

// fromPackage drops what comes before the package clause: the build line
// and the header comment, which are the only free text outside the holes.
func fromPackage(lines []string) ([]string, int, error) {
	for i, l := range lines {
		if l == "package main" {
			return lines[i:], i, nil
		}
	}
	return nil, 0, fmt.Errorf("no package main line")
}

// sameOutsideHoles reports where exercise and solution differ outside the
// holes. The rule: cut the exercise at its holes into runs of lines; the
// solution must be those runs, in order, with anything (even nothing)
// between them where the holes were. It is glob matching with one `*` per
// hole, on whole lines: the first run must start the solution, the last
// must end it, and each run between is taken at its first match.
func sameOutsideHoles(exercise, solution []string) error {
	ex, exOff, err := fromPackage(exercise)
	if err != nil {
		return fmt.Errorf("exercise: %w", err)
	}
	sol, _, err := fromPackage(solution)
	if err != nil {
		return fmt.Errorf("solution: %w", err)
	}
	hs, err := holes(exercise)
	if err != nil {
		return err
	}
	var runs [][]string // lines between holes
	var runStart []int  // each run's first line in the exercise, 1-based
	prev := 0
	for _, h := range hs {
		if h.start < exOff {
			return fmt.Errorf("line %d: TODO(%d) before the package clause", h.start+1, h.n)
		}
		runs = append(runs, ex[prev:h.start-exOff])
		runStart = append(runStart, exOff+prev+1)
		prev = h.end - exOff + 1
	}
	runs = append(runs, ex[prev:])
	runStart = append(runStart, exOff+prev+1)

	// The first run starts the solution.
	first := runs[0]
	if at := mismatch(sol, first); at >= 0 {
		return fmt.Errorf("exercise line %d differs from main.go outside any TODO hole: %q", runStart[0]+at, first[at])
	}
	pos := len(first)
	last := len(runs) - 1
	for i := 1; i < last; i++ {
		found := index(sol[pos:], runs[i])
		if found < 0 {
			return fmt.Errorf("exercise lines %d-%d (between TODO(%d) and the next hole) are not in main.go after TODO(%d)'s place: %s",
				runStart[i], runStart[i]+len(runs[i])-1, i, i, firstDifference(sol[pos:], runs[i]))
		}
		pos += found + len(runs[i])
	}
	// The last run ends it, after what the others took.
	tail := runs[last]
	if len(sol)-pos < len(tail) || mismatch(sol[len(sol)-len(tail):], tail) >= 0 {
		return fmt.Errorf("exercise lines %d-%d (after the last TODO) do not end main.go: %s",
			runStart[last], runStart[last]+len(tail)-1, firstDifference(sol[pos:], tail))
	}
	return nil
}

// mismatch returns the first index where run differs from the start of
// lines, or -1 when lines starts with run.
func mismatch(lines, run []string) int {
	for i, l := range run {
		if i >= len(lines) || lines[i] != l {
			return i
		}
	}
	return -1
}

// index returns where run first occurs in lines, or -1.
func index(lines, run []string) int {
	for i := 0; i+len(run) <= len(lines); i++ {
		if mismatch(lines[i:], run) < 0 {
			return i
		}
	}
	return -1
}

// firstDifference names the run's line that stops it matching anywhere,
// for the error: the longest prefix of run that main.go does have.
func firstDifference(lines, run []string) string {
	for n := len(run); n > 0; n-- {
		if index(lines, run[:n]) >= 0 {
			if n == len(run) {
				return "the lines are there, but not where the holes allow"
			}
			return fmt.Sprintf("main.go has no line %q there", run[n])
		}
	}
	if len(run) == 0 {
		return "nothing"
	}
	return fmt.Sprintf("main.go has no line %q there", run[0])
}

// lessonsWithExercises lists the lesson folders that have an exercise.go.
func lessonsWithExercises(t *testing.T) []string {
	t.Helper()
	found, err := filepath.Glob(filepath.Join(lessonsDir, "*", "exercise.go"))
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, f := range found {
		dirs = append(dirs, filepath.Dir(f))
	}
	// Lessons 01-04 have exercises at least; a glob that finds fewer is
	// looking in the wrong place.
	if len(dirs) < 4 {
		t.Fatalf("found %d exercises in %s: want at least lessons 01-04", len(dirs), lessonsDir)
	}
	return dirs
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(data), "\n")
}

// TestExercisesFollowTheirSolutions: each exercise.go is main.go with holes,
// and the two build tags split them.
func TestExercisesFollowTheirSolutions(t *testing.T) {
	for _, dir := range lessonsWithExercises(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			ex := readLines(t, filepath.Join(dir, "exercise.go"))
			sol := readLines(t, filepath.Join(dir, "main.go"))
			if ex[0] != "//go:build exercise" {
				t.Errorf("exercise.go's first line is %q: want //go:build exercise", ex[0])
			}
			if sol[0] != "//go:build !exercise" {
				t.Errorf("main.go's first line is %q: want //go:build !exercise", sol[0])
			}
			if err := sameOutsideHoles(ex, sol); err != nil {
				t.Error("exercise.go:", err)
			}
		})
	}
}

var scriptName = regexp.MustCompile(`[a-z0-9_-]+\.txtar`)

// TestHintsNameRealScripts keeps the hints true: every testscript an
// exercise's hint names is one of its lesson's, and every one that
// EXERCISES.md names belongs to some lesson.
func TestHintsNameRealScripts(t *testing.T) {
	all := map[string]bool{}
	for _, dir := range lessonsWithExercises(t) {
		scripts, err := filepath.Glob(filepath.Join(dir, "testdata", "*.txtar"))
		if err != nil || len(scripts) == 0 {
			t.Fatalf("%s: no testscripts (%v)", dir, err)
		}
		own := map[string]bool{}
		for _, s := range scripts {
			own[filepath.Base(s)], all[filepath.Base(s)] = true, true
		}
		data, err := os.ReadFile(filepath.Join(dir, "exercise.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range scriptName.FindAllString(string(data), -1) {
			if !own[name] {
				t.Errorf("%s/exercise.go names %s, which is not in its testdata", filepath.Base(dir), name)
			}
		}
	}
	data, err := os.ReadFile(filepath.Join(lessonsDir, "EXERCISES.md"))
	if err != nil {
		t.Fatal(err)
	}
	names := scriptName.FindAllString(string(data), -1)
	if len(names) < 10 {
		t.Fatalf("EXERCISES.md names %d testscripts: are its break tasks still there?", len(names))
	}
	for _, name := range names {
		if !all[name] {
			t.Errorf("EXERCISES.md names %s, which no lesson with an exercise has", name)
		}
	}
}

// goCommand skips where there is no go command (the lab VM runs test
// binaries without a toolchain).
func goCommand(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	return gobin
}

// TestExercisesCompile builds every lesson with -tags exercise. (Only the
// program: the lessons' test files carry no tag, and they need nothing but
// run, which main() calls too. go build, not go vet, for a cold cache in
// the non-root lane: vet would compile the test dependencies as well.)
func TestExercisesCompile(t *testing.T) {
	gobin := goCommand(t)
	// -buildvcs=false: the non-root lane does not own the checkout, and git
	// refuses to describe it to another user ("dubious ownership").
	args := []string{"build", "-buildvcs=false", "-tags", "exercise"}
	for _, dir := range lessonsWithExercises(t) {
		args = append(args, "./"+filepath.Base(dir))
	}
	cmd := exec.Command(gobin, args...)
	cmd.Dir = lessonsDir // several main packages: go build checks them and writes nothing
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// graded are the lessons whose unfinished exercise the test runs: a
// couple, the quick ones, since each costs a go test of its own.
var graded = []string{"01-chroot", "03-rootfs"}

// TestHolesAreReal grades unfinished exercises and wants them to fail, for
// the holes: the output names a TODO. An exercise that passes as it is
// would grade nothing.
func TestHolesAreReal(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the lessons' testscripts skip without it, and a skipped script proves no hole")
	}
	gobin := goCommand(t)
	for _, lesson := range graded {
		t.Run(lesson, func(t *testing.T) {
			cmd := exec.Command(gobin, "test", "-count=1", "-tags", "exercise", "./"+lesson)
			cmd.Dir = lessonsDir
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			if err == nil {
				t.Fatalf("go test -tags exercise ./lessons/%s passed with its holes open:\n%s", lesson, out.String())
			}
			if _, ok := err.(*exec.ExitError); !ok {
				t.Fatal(err)
			}
			if !regexp.MustCompile(`TODO \d+:`).Match(out.Bytes()) {
				t.Fatalf("go test -tags exercise ./lessons/%s failed, but not at a hole (no \"TODO N:\" in its output):\n%s", lesson, out.String())
			}
		})
	}
}
