package labtest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/minictr/minictr/internal/testenv"
)

// TestMain fails the run if a README's steps leave a cgroup, a mount, a
// link or a process behind.
func TestMain(m *testing.M) { testenv.Main(m, nil) }

// labMarker is written by the lab's init (scripts/vm/init).
const labMarker = "/etc/minictr-lab"

func inLab() bool {
	_, err := os.Stat(labMarker)
	return err == nil
}

func TestParse(t *testing.T) {
	readme := strings.Join([]string{
		"# title",
		"```sh",
		"$ not a step",
		"```",
		"```console lab",
		"$ echo hi   ",
		"hi",
		"",
		"$ ! false",
		"$ for i in 1; do",
		"> echo $i",
		"> done",
		"1",
		"...",
		"```",
		"text",
		"````console host lab",
		"$ cd /tmp",
		"```",
		"````",
		"```console",
		"$ shown, not run",
		"```",
	}, "\n")
	got, err := Parse(strings.NewReader(readme))
	if err != nil {
		t.Fatal(err)
	}
	want := []Block{
		{Line: 5, Lab: true, Steps: []Step{
			{Line: 6, Command: "echo hi", Want: []string{"hi"}},
			{Line: 9, Command: "false", MustFail: true},
			{Line: 10, Command: "for i in 1; do\necho $i\ndone", Want: []string{"1", "..."}},
		}},
		{Line: 17, Lab: true, Host: true, Steps: []Step{
			{Line: 18, Command: "cd /tmp", Want: []string{"```"}},
		}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse:\n got %+v\nwant %+v", got, want)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ readme, err string }{
		{"```console lab hots\n$ true\n```\n", `"hots" is neither lab nor host`},
		{"```console lab\noutput\n$ true\n```\n", "line 2: output before"},
		{"```console lab\n$ \n```\n", "line 2: empty command"},
		{"```console host\n```\n", "block has no"},
		{"```console lab\n$ true\n", "end of file inside a block"},
	} {
		_, err := Parse(strings.NewReader(tc.readme))
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("Parse(%q) = %v, want an error with %q", tc.readme, err, tc.err)
		}
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		want, got string
		ok        bool
	}{
		{"a\nb", "a\nb", true},
		{"a\nb", "a\nc", false},
		{"a\nb", "a", false},
		{"a", "a\nb", false},
		{"a\n...\nd", "a\nd", true},
		{"a\n...\nd", "a\nb\nc\nd", true},
		{"a\n...\nd", "a\nb\nc", false},
		{"...", "", true},
		{"...\nz", "x\ny\nz", true},
		{"pid ... of ...", "pid 42 of 7", true},
		{"pid ... of ...", "pid 42 from 7", false},
		{"a.b", "axb", false}, // only "..." is special
		{"x   ", "x", true},
		{"x", "x  \n\n", true},
		{"cpu.max: ...", "cpu.max: 10000 100000", true},
		{"[1] (x)*", "[1] (x)*", true},
	} {
		if got := Match(lines(tc.want), lines(tc.got)); got != tc.ok {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.want, tc.got, got, tc.ok)
		}
	}
}

func sampleShell(t *testing.T) Shell {
	return Shell{Args: []string{"sh"}, Dir: t.TempDir(), Timeout: time.Minute}
}

func readBlocks(t *testing.T, path string) []Block {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	blocks, err := Parse(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return blocks
}

// TestHarnessPasses runs a sample whose every step holds.
func TestHarnessPasses(t *testing.T) {
	blocks := readBlocks(t, "testdata/good/README.md")
	if len(blocks) != 4 || len(blocks[0].Steps) != 11 {
		t.Fatalf("testdata/good/README.md: %d blocks, want 4 (the first with 11 steps)", len(blocks))
	}
	sh := sampleShell(t) // one start directory: the last block reads what the one before left
	for _, b := range blocks {
		if err := RunBlock(b, sh); err != nil {
			t.Errorf("block at line %d: %v", b.Line, err)
		}
	}
}

// TestHarnessFails runs a sample README whose shown output is wrong: every
// block must fail, at the step and for the reason listed.
func TestHarnessFails(t *testing.T) {
	want := []struct {
		line   int
		reason string
	}{
		{7, "printed something else"},
		{14, "failed"},
		{20, "must fail"},
		{26, "printed something else"},
		{35, "printed something else"},
		{41, "printed something else"},
	}
	blocks := readBlocks(t, "testdata/wrong/README.md")
	if len(blocks) != len(want) {
		t.Fatalf("%d blocks, want %d", len(blocks), len(want))
	}
	for i, b := range blocks {
		err := RunBlock(b, sampleShell(t))
		var f *Failure
		if !errors.As(err, &f) {
			t.Errorf("block at line %d: err = %v, want a failure at line %d", b.Line, err, want[i].line)
			continue
		}
		if f.Step.Line != want[i].line || !strings.Contains(f.Reason, want[i].reason) {
			t.Errorf("block at line %d failed at line %d (%s), want line %d (%s)", b.Line, f.Step.Line, f.Reason, want[i].line, want[i].reason)
		}
	}
}

// TestHarnessTimeoutAndExit: a step that hangs or ends the shell is a
// failure, and the block's background processes do not outlive it (the
// leak check of TestMain would see them).
func TestHarnessTimeoutAndExit(t *testing.T) {
	sh := sampleShell(t)
	sh.Timeout = 500 * time.Millisecond
	hang := Block{Steps: []Step{{Line: 1, Command: "sleep 30 & sleep 30"}}}
	if err := RunBlock(hang, sh); err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("hanging step: err = %v, want a timeout", err)
	}
	exit := Block{Steps: []Step{{Line: 1, Command: "exit 0"}, {Line: 2, Command: "true"}}}
	if err := RunBlock(exit, sh); err == nil || !strings.Contains(err.Error(), "shell ended") {
		t.Errorf("exit in a step: err = %v, want the shell's end reported", err)
	}
}

// lessons returns every lesson README, in lesson order, with its blocks.
func lessons(t *testing.T) (dirs []string, blocks [][]Block) {
	t.Helper()
	readmes, err := filepath.Glob("../../lessons/[0-9][0-9]-*/README.md")
	if err != nil || len(readmes) == 0 {
		t.Fatalf("no lesson READMEs under ../../lessons (%v)", err)
	}
	for _, r := range readmes {
		dirs = append(dirs, filepath.Dir(r))
		blocks = append(blocks, readBlocks(t, r))
	}
	return dirs, blocks
}

// TestReadmesParse: every lesson README is well formed, on any machine.
func TestReadmesParse(t *testing.T) { lessons(t) }

// TestLab runs the "console lab" blocks of every lesson README in the lab
// VM, README after README in lesson order, as the student's shell would:
// a login shell (/etc/profile) starting in /root.
func TestLab(t *testing.T) {
	if !inLab() {
		t.Skip("not in the lab VM (no " + labMarker + "): scripts/vm.sh test runs these")
	}
	testenv.SkipIfNotRoot(t)
	dirs, all := lessons(t)
	n := 0
	for i, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			for _, b := range all[i] {
				if !b.Lab {
					continue
				}
				n++
				sh := Shell{Args: []string{"sh", "-l"}, Dir: "/root", Env: []string{"HOME=/root", "PATH=" + os.Getenv("PATH")}, Timeout: 2 * time.Minute}
				if err := RunBlock(b, sh); err != nil {
					t.Errorf("%s/README.md, block at line %d:\n%v", dir, b.Line, err)
				}
			}
		})
	}
	if n == 0 {
		t.Error("no lesson README has a \"console lab\" block: nothing was proved")
	}
}

// TestHost runs the "console host" blocks of every lesson README on this
// host, as root, from the lesson's folder (where `go run .` works).
func TestHost(t *testing.T) {
	if inLab() {
		t.Skip("in the lab VM: host blocks run on the host (go test ./internal/labtest)")
	}
	testenv.SkipIfNotRoot(t)
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go in PATH: host blocks use go run")
	}
	dirs, all := lessons(t)
	n := 0
	for i, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			for _, b := range all[i] {
				if !b.Host {
					continue
				}
				n++
				abs, err := filepath.Abs(dir)
				if err != nil {
					t.Fatal(err)
				}
				sh := Shell{Args: []string{"sh"}, Dir: abs, Timeout: 2 * time.Minute}
				if err := RunBlock(b, sh); err != nil {
					t.Errorf("%s/README.md, block at line %d:\n%v", dir, b.Line, err)
				}
			}
		})
	}
	if n == 0 {
		t.Skip("no lesson README has a \"console host\" block yet")
	}
}
