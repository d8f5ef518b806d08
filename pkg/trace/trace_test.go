package trace

import (
	"bytes"
	"testing"
)

func TestNewPrintsActionAndShell(t *testing.T) {
	var b bytes.Buffer
	tr := New(&b)
	tr.Step("cgroups", "write 67108864 > memory.max", "echo 67108864 > memory.max")
	tr.Step("chroot", "pivot_root(\".\", \".\")", "")
	want := "[cgroups] write 67108864 > memory.max\n" +
		"          $ echo 67108864 > memory.max\n" +
		"[chroot] pivot_root(\".\", \".\")\n"
	if b.String() != want {
		t.Fatalf("got\n%q\nwant\n%q", b.String(), want)
	}
}

func TestOrNil(t *testing.T) {
	Or(nil).Step("x", "y", "z") // must not panic
	var r Recorder
	Or(&r).Step("a", "b", "c")
	if len(r.Steps) != 1 || r.Steps[0] != (Recorded{"a", "b", "c"}) {
		t.Fatalf("recorder kept %v", r.Steps)
	}
}
