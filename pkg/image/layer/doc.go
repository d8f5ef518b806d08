// Package layer turns image layers (tar archives) into directories.
//
// # Unpacking safely
//
// A layer is a tar archive written by someone else, so every entry is hostile
// until proven otherwise. Unpack and Apply refuse the whole layer, naming the
// entry, when an entry would land outside the layer directory: a name with a
// ".." component or a leading "/", a file written through a symlink that
// leaves the directory (absolute or "../.." targets), a hard link to anything
// but a regular file already unpacked inside it, or a character or block
// device node (a container must never get /dev/sda from an image).
//
// The parent directory of each entry is opened with openat2(2) and
// RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS relative to the layer directory: the
// kernel walks the path and fails with EXDEV if any step, symlinks included,
// would leave it. We then create the last component with the *at syscalls
// (mkdirat, openat O_EXCL|O_NOFOLLOW, symlinkat, linkat, mknodat) relative to
// that directory file descriptor, so a symlink is never followed at the end
// either. The kernel checks and opens in one step, so there is no window
// between a check in our code and its use. We ask for RESOLVE_BENEATH, which
// refuses an escape, rather than RESOLVE_IN_ROOT, which would quietly
// reinterpret "/etc" as "DIR/etc": safe as well, but a layer that writes
// through a symlink to /etc is hostile and should be refused, not repaired. A
// symlink's target is only data: absolute targets are allowed (images are full
// of them); only writing *through* one out of the directory is refused.
// openat2 needs Linux 5.6; a careful user-space walk (lstat each component,
// read each symlink, keep a depth count) is what runc's securejoin and Go's
// os.Root do on older kernels, and is longer and racier than one syscall.
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
