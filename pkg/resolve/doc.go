// Package resolve answers one question for every part of minictr: where is
// this path inside that root directory? It opens the path relative to a
// directory file descriptor, and never lets a symlink or ".." take it
// outside.
//
// # Why a plain join is not enough
//
// filepath.Join(root, "/etc/passwd") names root/etc/passwd, but opening it
// asks the kernel to walk root, etc, passwd, following every symlink on
// the way (path_resolution(7)). An image is written by strangers: if its
// etc is a symlink to /etc, or passwd is "../../../../etc/passwd", the
// walk leaves root and ends on the host. Checking each component with
// lstat before the open does not help either: the check and the open are
// two walks, and the tree can change between them.
//
// # Two modes, as the kernel has them
//
// openat2(2) (Linux 5.6) walks a path relative to a directory descriptor
// and enforces a rule on every step, symlinks included, in the same walk
// that opens the file. minictr needs two of its rules:
//
//   - Beneath (RESOLVE_BENEATH): refuse anything that would leave the root.
//     ".." above the root, an absolute symlink, an absolute path: the open
//     fails with ErrOutside (the kernel's EXDEV). For image layers, where
//     a tar entry written through a symlink to /etc is an attack to refuse,
//     not a mistake to repair.
//   - InRoot (RESOLVE_IN_ROOT): resolve as a process chrooted into the root
//     would. "/" is the root, ".." at the root stays there, and an absolute
//     symlink starts again from the root, so /etc/passwd -> /usr/lib/passwd
//     opens root/usr/lib/passwd. For what the container itself will see
//     once it runs: mount targets, the working directory, /etc/passwd, and
//     later copies in and out of a container.
//
// Both also refuse "magic" links (RESOLVE_NO_MAGICLINKS): /proc/self/fd/N
// and /proc/PID/root are symlinks only in name, and jump anywhere.
// Both stop after 40 symlinks with ELOOP, the kernel's MAXSYMLINKS. (The
// kernel first walks without locks and, when that fails midway, walks
// again with them, still counting the links of the first try: a path of
// exactly 40 can then fail. The user-space walk counts exactly 40.)
//
// Where openat2 is missing (ENOSYS: an older kernel, or a seccomp filter
// that does not know it), the same rules are applied by a walk in user
// space, one component at a time, each opened with openat(2)
// O_PATH|O_NOFOLLOW relative to the descriptor of the directory before it,
// symlinks read with readlinkat(2) and expanded by hand. ".." pops the
// walk's own stack of directory descriptors instead of asking the kernel
// for the parent, so a directory moved during the walk cannot lead it out.
// The walk is what runc's filepath-securejoin and Go's os.Root do; it is
// longer and makes a syscall or two per component where openat2 makes one
// per path. Tests run every case through both and expect the same answer.
//
// # Host side effects
//
// Open with O_CREAT and MkdirAll create files and directories below the
// root; RemoveAll deletes below it. Nothing else is changed, and nothing
// outside the root ever is.
package resolve
