package container

import (
	"fmt"

	"github.com/minictr/minictr/pkg/cgroups"
	"github.com/minictr/minictr/pkg/chroot"
	"github.com/minictr/minictr/pkg/trace"
)

// cgroupLayout reads the host's cgroup layout, once per command: the
// engine hands the same answer to the cgroups stage (New, Load) and to the
// container's init (chroot's /sys/fs/cgroup), so that they never disagree
// on v1 or v2.
func cgroupLayout(t trace.Tracer) (*cgroups.Layout, error) {
	l, err := cgroups.DetectLayout()
	if err != nil {
		return nil, err
	}
	t.Step("cgroups", fmt.Sprintf("host layout: %s", l), "grep cgroup /proc/self/mountinfo")
	return l, nil
}

// cgroupMounts are the hierarchies the container sees at /sys/fs/cgroup,
// as plain data for chroot: the stages share no types.
func cgroupMounts(l *cgroups.Layout) []chroot.CgroupMount {
	var ms []chroot.CgroupMount
	for _, h := range l.Visible() {
		ms = append(ms, chroot.CgroupMount(h))
	}
	return ms
}
