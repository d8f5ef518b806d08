// Package snapshot gives a container its private, writable root filesystem
// from an image's read-only layers, as data: Prepare makes the directories
// once, Mounts says what to mount on the root (an overlay, or nothing for a
// copy), Remove deletes them.
//
// # Overlay and copy
//
// overlayfs (Documentation/filesystems/overlayfs.rst, mount(2) with the
// options lowerdir, upperdir, workdir) stacks the unpacked layer directories
// read-only below and sends every write to DIR/upper (copy-on-write): a
// container starts in no time and shares its image's files with every other
// container of it. Where overlayfs cannot work (no CAP_SYS_ADMIN, a
// filesystem without d_type, an upper directory on overlayfs itself) the
// layers are copied into DIR/rootfs instead: slower and bigger, so the kind
// and the reason travel back to the user as data. Probe says which works;
// it mounts, so the engine asks once and keeps the answer.
//
// # Who mounts
//
// Nothing here mounts on the host (Detach's mount is in no namespace
// until the init attaches it in its own). The engine hands Mounts to the
// container's init, which mounts them inside its own mount namespace before
// pivot_root(2) (pkg/chroot): the overlay lives and dies with the
// container, and an engine killed with SIGKILL leaves directories only.
// The same snapshot can be mounted again by the next start of a stopped
// container, as containerd's snapshotters allow: prepare once, mount many
// times, remove at the end.
//
// # A root that is not host root
//
// A container with a user namespace of its own (user_namespaces(7)) has a
// root that is an unprivileged ID on the host, while the layers belong to
// host root. Prepare takes the container's id maps and carries them as
// data: the overlay's Mount gets "uidmap=" and "gidmap=" options (not the
// kernel's: containerd's spelling), its upper and work directories belong
// to the mapped root. Such a mount cannot be made by the init inside its
// user namespace (idmapping the layers' filesystem needs host root, and
// only a mounter in the host's user namespace reads trusted.overlay.*), so
// Detach makes it from the engine: each lower layer cloned (open_tree(2))
// and idmapped through the container's /proc/PID/ns/user (mount_setattr(2)
// MOUNT_ATTR_IDMAP), the overlay a detached mount (fsmount(2)), in no
// mount namespace, which the init attaches with move_mount(2). Where
// idmapped mounts do not work (ProbeIDMap says), a copy is made and chown'd
// into the range instead: each owner shifted, setuid bits restored.
//
// # Host side effects
//
// Prepare writes below DIR only: rootfs/, upper/ and work/ (overlay) or a
// copy of the layers (copy), and snapshot.json last, which Load reads.
// Remove deletes DIR; the engine calls it when the container is removed,
// or reclaims it after a killed engine (container.Reap).
package snapshot
