package container

import (
	"errors"
	"testing"

	"github.com/minictr/minictr/pkg/cgroups"
	"github.com/minictr/minictr/pkg/chroot"
)

// The init gets each --device as plain data: st_mode with the type bits
// (S_IFCHR 0o20000, S_IFBLK 0o60000) and the permissions, number, owner.
func TestDeviceNodes(t *testing.T) {
	got := deviceNodes([]cgroups.DeviceNode{
		{HostPath: "/h/full", Path: "/dev/full2", Type: cgroups.CharDevice, Major: 1, Minor: 7, Mode: 0o640, UID: 1000, GID: 1001, Access: "r"},
		{HostPath: "/h/blk", Path: "/dev/blk", Type: cgroups.BlockDevice, Major: 240, Minor: 3, Mode: 0o600, Access: "rwm"},
	})
	want := []chroot.Device{
		{Path: "/dev/full2", HostPath: "/h/full", Mode: 0o20640, Major: 1, Minor: 7, UID: 1000, GID: 1001},
		{Path: "/dev/blk", HostPath: "/h/blk", Mode: 0o60600, Major: 240, Minor: 3},
	}
	if len(got) != len(want) {
		t.Fatalf("deviceNodes = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("device %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// A spec's devices need absolute paths and a character or block type: the
// CLI's ParseDevice makes such nodes, a library caller may not.
func TestValidateDevices(t *testing.T) {
	good := cgroups.DeviceNode{HostPath: "/dev/null", Path: "/dev/x", Type: cgroups.CharDevice, Major: 1, Minor: 3, Access: "rwm"}
	spec := func(d cgroups.DeviceNode) Spec {
		return Spec{Process: Process{Args: []string{"true"}}, Rootfs: t.TempDir(), Devices: []cgroups.DeviceNode{d}}
	}
	s := spec(good)
	if _, err := s.validate(); err != nil {
		t.Fatalf("%+v: %v", good, err)
	}
	relative, noType, hostRelative := good, good, good
	relative.Path = "dev/x"
	noType.Type = cgroups.AnyDevice
	hostRelative.HostPath = "null"
	for _, d := range []cgroups.DeviceNode{relative, noType, hostRelative} {
		s := spec(d)
		if _, err := s.validate(); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("%+v accepted (%v)", d, err)
		}
	}
}
