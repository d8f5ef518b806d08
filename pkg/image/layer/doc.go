// Package layer turns image layers (tar archives) into directories.
//
// # Unpacking safely
//
// A layer is a tar archive written by someone else, so every entry is hostile
// until proven otherwise. Entry names are read as docker, containerd and GNU
// tar read them: a leading "/" or "./" is dropped (umoci writes a root entry
// "/", other tools "/etc/passwd" or "./etc/passwd"), so each lands below the
// layer directory. Unpack and Apply refuse the whole layer, naming the entry,
// when an entry would land outside it: a name whose ".." components climb
// above it, a file written through a symlink that leaves the directory
// (absolute or "../.." targets), a hard link to anything but a regular file
// already unpacked inside it, or a character or block device node (a
// container must never get /dev/sda from an image).
//
// The parent directory of each entry is opened with pkg/resolve in its
// Beneath mode: openat2(2) RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS relative to
// the layer directory, so the kernel walks the path and fails with EXDEV if
// any step, symlinks included, would leave it. We then create the last
// component with the *at syscalls (mkdirat, openat O_EXCL|O_NOFOLLOW,
// symlinkat, linkat, mknodat) relative to that directory file descriptor, so
// a symlink is never followed at the end either. The kernel checks and opens
// in one step, so there is no window between a check in our code and its
// use. A tar lists a directory's entries together, so the parent stays open
// from one entry to the next and is resolved once per directory, again after
// any removal. Beneath refuses an escape, where RESOLVE_IN_ROOT would quietly
// reinterpret "/etc" as "DIR/etc": safe as well, but a layer that writes
// through a symlink to /etc is hostile and should be refused, not repaired. A
// symlink's target is only data: absolute targets are allowed (images are full
// of them); only writing *through* one out of the directory is refused. On
// kernels without openat2 (before 5.6) pkg/resolve walks the path in user
// space under the same rule. Apply onto a container's root, where the
// layers below are the root the container will see, takes Options.InRoot:
// RESOLVE_IN_ROOT, so that a lower layer's /var/run -> /run leads to
// DIR/run, as docker's chrootarchive resolves it.
//
// # Whiteouts
//
// A layer deletes a file of the layers below it with an empty entry named
// ".wh.NAME", and hides a whole directory below it with ".wh..wh..opq" inside
// it. Unpack converts them to the form overlayfs understands (see
// Documentation/filesystems/overlayfs.rst): a character device 0/0 named NAME
// (mknod(2)), and the extended attribute trusted.overlay.opaque=y on the
// directory (setxattr(2)). Apply, used when layers are copied on top of each
// other into one directory, deletes instead.
//
// # Host side effects
//
// Unpack and Apply write only below the directory they are given; on error
// the directory is left half-filled and the caller (pkg/image) removes it, so
// it unpacks into a temporary directory and renames it into the store on
// success. Stacking unpacked layers into a container's root is
// pkg/snapshot's work.
package layer
