package container

import (
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minictr/minictr/pkg/trace"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// newAutoRun is a run of an --userns=auto container whose state record
// exists, as the step before allocateUserNS leaves it: held by this
// process while the test runs when alive, let go at once (as the kernel
// does when an engine dies) when not.
func newAutoRun(t *testing.T, runRoot, subuid, subgid string, alive bool) *run {
	t.Helper()
	r := &run{id: newID(), t: trace.Discard, o: RunOptions{
		RunRoot: runRoot, SubUIDFile: subuid, SubGIDFile: subgid,
		Spec: Spec{UserNS: UserNSAuto},
	}}
	r.st = state{ID: r.id, Created: time.Now()}
	l, err := createState(runRoot, r.st)
	if err != nil {
		t.Fatal(err)
	}
	if !alive {
		l.Unlock()
	} else {
		t.Cleanup(func() { l.Unlock() })
	}
	return r
}

func TestReadSubIDs(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "subuid")
	writeFile(t, f, "# comment\nalice:100000:65536\nminictr:300000:131072\n\nminictr:600000:70000\nminictrx:1:2\n")
	rs, err := readSubIDs(f, "minictr")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rs) != "[{300000 131072} {600000 70000}]" {
		t.Errorf("ranges = %v", rs)
	}
	// Two blocks from the first range, one from the second (its rest is
	// too small for a container).
	if got := fmt.Sprint(blocks(rs)); got != "[300000 365536 600000]" {
		t.Errorf("blocks = %s, want [300000 365536 600000]", got)
	}
	for content, want := range map[string]string{
		"minictr:abc:65536\n":    "is not NAME:START:COUNT",
		"minictr:100000\n":       "is not NAME:START:COUNT",
		"minictr:100000:-5\n":    "is not NAME:START:COUNT",
		"minictr:0:65536\n":      "starts at 0",
		"minictr:4294967295:2\n": "is not NAME:START:COUNT",
	} {
		writeFile(t, f, content)
		if _, err := readSubIDs(f, "minictr"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("readSubIDs(%q) = %v, want an error saying %q", content, err, want)
		}
	}
}

// Every refusal is one line naming the file and what to do.
func TestSubIDBlocksErrors(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "subuid")
	for content, want := range map[string]string{
		"alice:100000:65536\n":                         `has no range for "minictr" (add a line such as minictr:100000:655360)`,
		"minictr:100000:1000\nminictr:200000:65535\n":  "too small: a container needs 65536 IDs in one range, the largest holds 65535",
		"minictr:100000:65536\nminictr:x:1\n":          "line 2",
		"alice:100000:65536\nminictr:100000:65536:9\n": "line 2",
	} {
		writeFile(t, f, content)
		_, err := subIDBlocks(f)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("subIDBlocks(%q) = %v, want one line with %q", content, err, want)
		}
	}
	if _, err := subIDBlocks(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v, want ErrNotExist", err)
	}
}

// Live containers keep their ranges; a container whose engine is gone,
// and one being removed, give theirs back; when every range is taken the
// start fails with 125.
func TestAllocateUserNS(t *testing.T) {
	dir := t.TempDir()
	runRoot := filepath.Join(dir, "run")
	ids := filepath.Join(dir, "subid")
	writeFile(t, ids, "minictr:100000:131072\nminictr:500000:65536\n")

	a := newAutoRun(t, runRoot, ids, ids, true)
	if err := a.allocateUserNS(); err != nil {
		t.Fatal(err)
	}
	if a.st.UserNS == nil || a.st.UserNS.UID != 100000 || a.st.UserNS.GID != 100000 || a.st.UserNS.Size != 65536 {
		t.Fatalf("first container got %+v, want 100000/100000/65536", a.st.UserNS)
	}
	// The record on disk is the allocation.
	if s, err := readState(filepath.Join(runRoot, "containers", a.id)); err != nil || s.UserNS == nil || s.UserNS.UID != 100000 {
		t.Fatalf("state record = %+v, %v; want the range in it", s.UserNS, err)
	}

	b := newAutoRun(t, runRoot, ids, ids, true)
	if err := b.allocateUserNS(); err != nil || b.st.UserNS.UID != 165536 {
		t.Fatalf("second container: %v, %+v; want 165536", err, b.st.UserNS)
	}
	// A dead engine's container (no one holds its record's lock).
	dead := newAutoRun(t, runRoot, ids, ids, false)
	if err := dead.allocateUserNS(); err != nil || dead.st.UserNS.UID != 500000 {
		t.Fatalf("third container: %v, %+v; want 500000", err, dead.st.UserNS)
	}
	c := newAutoRun(t, runRoot, ids, ids, true)
	if err := c.allocateUserNS(); err != nil || c.st.UserNS.UID != 500000 {
		t.Fatalf("after a dead engine's container: %v, %+v; want its range, 500000", err, c.st.UserNS)
	}
	// All taken now.
	d := newAutoRun(t, runRoot, ids, ids, true)
	err := d.allocateUserNS()
	var se *StartError
	if !errors.As(err, &se) || se.Code != 125 || !strings.Contains(err.Error(), "all 3 ranges of 65536 IDs") {
		t.Fatalf("with every range taken: %v, want a 125 saying all 3 are in use", err)
	}
	// Removing a container frees its range.
	if err := removeState(runRoot, a.id); err != nil {
		t.Fatal(err)
	}
	if err := d.allocateUserNS(); err != nil || d.st.UserNS.UID != 100000 {
		t.Fatalf("after a removal: %v, %+v; want the freed 100000", err, d.st.UserNS)
	}
}

// Concurrent starts, each with its own lock file descriptor as separate
// minictr processes have, never get the same range.
func TestAllocateUserNSConcurrent(t *testing.T) {
	dir := t.TempDir()
	runRoot := filepath.Join(dir, "run")
	ids := filepath.Join(dir, "subid")
	const n = 12
	writeFile(t, ids, fmt.Sprintf("minictr:100000:%d\n", n*UserNSSize))
	runs := make([]*run, n)
	for i := range runs {
		runs[i] = newAutoRun(t, runRoot, ids, ids, true)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.allocateUserNS()
		}()
	}
	wg.Wait()
	seen := map[int]bool{}
	for i, r := range runs {
		if errs[i] != nil {
			t.Fatalf("start %d: %v", i, errs[i])
		}
		if seen[r.st.UserNS.UID] {
			t.Errorf("two containers got uid %d", r.st.UserNS.UID)
		}
		seen[r.st.UserNS.UID] = true
	}
}

func TestCheckUserNS(t *testing.T) {
	for _, s := range []Spec{{}, {UserNS: UserNSHost}, {UserNS: UserNSAuto}, {UserNS: UserNSHost, Privileged: true}} {
		if err := s.checkUserNS(); err != nil {
			t.Errorf("%+v: %v", s, err)
		}
	}
	for _, s := range []Spec{{UserNS: "keep-id"}, {UserNS: UserNSAuto, Privileged: true}} {
		if err := s.checkUserNS(); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("%+v accepted (%v)", s, err)
		}
	}
}

// The container's root must be able to walk to its root directory: a
// directory on the way that shuts others out is named.
func TestReachableByRoot(t *testing.T) {
	dir := t.TempDir()
	// t.TempDir's are 0700, and so may be $TMPDIR itself (the non-root
	// lane's): open every ancestor this process owns, up to $TMPDIR and no
	// further, to the mapped root.
	for d := dir; d != "/" && d != filepath.Dir(os.TempDir()); d = filepath.Dir(d) {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil {
			t.Fatal(err)
		}
		if int(st.Uid) != os.Geteuid() || st.Mode&0o001 != 0 {
			continue
		}
		if err := os.Chmod(d, os.FileMode(st.Mode&0o7777|0o011)); err != nil {
			t.Fatal(err)
		}
	}
	shut := filepath.Join(dir, "shut")
	root := filepath.Join(shut, "rootfs")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shut, 0o700); err != nil {
		t.Fatal(err)
	}
	r := &run{st: state{UserNS: &usernsRecord{UID: 100000, GID: 100000, Size: UserNSSize}}}
	err := r.reachableByRoot(root, false)
	if err == nil || !strings.Contains(err.Error(), "cannot enter "+shut+" (mode 0700") {
		t.Fatalf("reachableByRoot = %v, want it to name %s", err, shut)
	}
	if err := os.Chmod(shut, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := r.reachableByRoot(root, false); err != nil {
		t.Fatalf("with o+x: %v", err)
	}
	// minictr's own directories it opens itself.
	own := filepath.Join(dir, "state")
	if err := os.MkdirAll(filepath.Join(own, "containers"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(own, 0o700); err != nil {
		t.Fatal(err)
	}
	r.o.Root = own
	if err := r.reachableByRoot(filepath.Join(own, "containers"), true); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{own, filepath.Join(own, "containers")} {
		if fi, _ := os.Stat(d); fi.Mode().Perm() != 0o711 {
			t.Errorf("%s is %v, want 0711", d, fi.Mode().Perm())
		}
	}
}
