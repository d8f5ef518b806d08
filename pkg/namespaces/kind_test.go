package namespaces

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestKindTable(t *testing.T) {
	for _, tc := range []struct {
		kind Kind
		name string
		flag uintptr
	}{
		{UTS, "uts", unix.CLONE_NEWUTS},
		{PID, "pid", unix.CLONE_NEWPID},
		{Mount, "mnt", unix.CLONE_NEWNS},
		{IPC, "ipc", unix.CLONE_NEWIPC},
		{Net, "net", unix.CLONE_NEWNET},
		{Cgroup, "cgroup", unix.CLONE_NEWCGROUP},
		{User, "user", unix.CLONE_NEWUSER},
	} {
		if got := tc.kind.String(); got != tc.name {
			t.Errorf("Kind(%d).String() = %q, want %q", int(tc.kind), got, tc.name)
		}
		if got := tc.kind.CloneFlag(); got != tc.flag {
			t.Errorf("%s.CloneFlag() = %#x, want %#x", tc.name, got, tc.flag)
		}
		if got, err := ParseKind(tc.name); err != nil || got != tc.kind {
			t.Errorf("ParseKind(%q) = %v, %v; want %v", tc.name, got, err, tc.kind)
		}
	}
	if len(All) != 7 {
		t.Errorf("All has %d kinds, want 7", len(All))
	}
	if got := Kind(42).String(); got != "Kind(42)" {
		t.Errorf("Kind(42).String() = %q", got)
	}
}

func TestParseKind(t *testing.T) {
	if k, err := ParseKind(" Mount "); err != nil || k != Mount {
		t.Errorf("ParseKind(mount) = %v, %v; want mnt (unshare's name)", k, err)
	}
	if k, err := ParseKind("NET"); err != nil || k != Net {
		t.Errorf("ParseKind(NET) = %v, %v; want net", k, err)
	}
	if _, err := ParseKind("time"); err == nil || !strings.Contains(err.Error(), `"time"`) {
		t.Errorf("ParseKind(time) = %v, want an error naming it", err)
	}
	ks, err := ParseKinds("net,uts,,pid,uts")
	if err != nil || len(ks) != 3 || ks[0] != UTS || ks[1] != PID || ks[2] != Net {
		t.Errorf("ParseKinds = %v, %v; want [uts pid net]", ks, err)
	}
}

func TestFlagsAndCommands(t *testing.T) {
	container := []Kind{Net, IPC, Mount, PID, UTS}
	want := uintptr(unix.CLONE_NEWUTS | unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWIPC | unix.CLONE_NEWNET)
	if got := CloneFlags(container); got != want {
		t.Errorf("CloneFlags = %#x, want %#x", got, want)
	}
	if got := FlagNames(container); got != "CLONE_NEWUTS|CLONE_NEWPID|CLONE_NEWNS|CLONE_NEWIPC|CLONE_NEWNET" {
		t.Errorf("FlagNames = %q", got)
	}
	if got := UnshareCommand(container); got != "unshare --uts --pid --mount --ipc --net --fork" {
		t.Errorf("UnshareCommand = %q", got)
	}
	if got := UnshareCommand([]Kind{UTS}); got != "unshare --uts" {
		t.Errorf("UnshareCommand(uts) = %q, want no --fork without a PID namespace", got)
	}
	if got := JoinCommand(42, []Kind{Mount, UTS}); got != "nsenter --target 42 --uts --mount" {
		t.Errorf("JoinCommand = %q", got)
	}
	if got := joinOrder([]Kind{UTS, Mount, Net}); got[len(got)-1] != Mount {
		t.Errorf("joinOrder = %v, want mnt last", got)
	}
}

func TestFraming(t *testing.T) {
	var buf bytes.Buffer
	payload := []byte(`{"hostname":"box"}`)
	if err := writeFrame(&buf, payload); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 4+len(payload) {
		t.Errorf("frame is %d bytes, want 4-byte length + %d", buf.Len(), len(payload))
	}
	got, err := readFrame(&buf)
	if err != nil || string(got) != string(payload) {
		t.Errorf("readFrame = %q, %v; want %q", got, err, payload)
	}
	// A truncated frame is an error, not a short payload.
	buf.Reset()
	writeFrame(&buf, payload)
	buf.Truncate(10)
	if _, err := readFrame(&buf); err == nil {
		t.Error("readFrame of a truncated frame succeeded")
	}
	// A length over the limit is refused before allocating.
	if _, err := readFrame(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff})); err == nil {
		t.Error("readFrame accepted a 4 GiB length")
	}
}

func TestJoinRefusesUser(t *testing.T) {
	if err := Join(1, []Kind{UTS, User}); !errors.Is(err, ErrJoinUser) {
		t.Errorf("Join(user) = %v, want ErrJoinUser", err)
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := Start(Config{}); err == nil {
		t.Error("Start without Args succeeded")
	}
	if _, err := Start(Config{Args: []string{"minictr"}, Namespaces: []Kind{User}}); err == nil {
		t.Error("Start with a user namespace and no mappings succeeded")
	}
	if _, err := Start(Config{Args: []string{"minictr"}, UIDMappings: []IDMap{{0, 1000, 1}}}); err == nil {
		t.Error("Start with mappings but no user namespace succeeded")
	}
}
