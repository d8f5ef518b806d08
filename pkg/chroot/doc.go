// Package chroot switches a process to a container's root filesystem and
// builds the filesystem view a container expects: /proc, /sys, /dev, masked
// and read-only paths, and an optionally read-only root.
//
// # The kernel features
//
// chroot(2) changes only where "/" resolves for path lookups. It is the
// historical way (lesson 01 shows it, and the escape) and not an isolation
// boundary: a root process can walk back out with a second chroot and a few
// chdir(".."). This package does not use it.
//
// pivot_root(2) moves the whole mount namespace to a new root mount and
// puts the old root underneath it, where it can be unmounted. Once the old
// root is gone there is no path left that leads to the host's files, which
// is why containers use it (lesson 03). It needs a private mount namespace
// (mount_namespaces(7)) created with clone(2) or unshare(2) CLONE_NEWNS.
//
// Everything else is mount(2) and umount2(2): bind mounts, proc(5), sysfs(5),
// tmpfs(5), devpts, mqueue (mq_overview(7)), the cgroup filesystems
// (cgroups(7)) read-only at /sys/fs/cgroup, and remounts that make a mount
// read-only. In a cgroup namespace (cgroup_namespaces(7)) a fresh cgroup
// mount shows the container's own cgroup as its root, so the container reads
// its limits (memory.max, memory.limit_in_bytes) where a runtime looks.
// Device nodes are made with mknod(2), links with symlink(2). Every mount
// target is resolved inside the rootfs by pkg/resolve (openat2(2)
// RESOLVE_IN_ROOT), so an image's symlink cannot aim a mount at the host.
// And the rootfs's path is looked up once: from then on Setup works from
// descriptors (mount(2) onto /proc/self/fd/N, mknodat(2), symlinkat(2),
// fchdir(2) before pivot_root), so a host user who renames a directory on
// that path meanwhile cannot redirect it (fd.go says how, and why).
//
// # Host side effects
//
// None. Setup runs in the container's own mount namespace, after making
// every mount in it private so that nothing propagates back to the host.
// When the last process of that namespace exits, the kernel unmounts all of
// it; there is nothing for minictr to clean up. The rootfs directory gains
// at most the empty mount points that Config.Mounts asks for, and the
// Config.Devices nodes (with their directories) whose path is outside the
// container's /dev, a tmpfs of its own: as with runc, they stay.
package chroot
