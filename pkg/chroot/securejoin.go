package chroot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// maxSymlinks bounds symlink resolution, like the kernel's ELOOP limit.
const maxSymlinks = 255

// SecureJoin returns the host path of p as the container would see it with
// root as "/": symlinks in the rootfs are followed as if root were the real
// root, so an absolute link resolves against root and ".." never climbs
// above it. Mounting on the result cannot land outside the rootfs, which a
// plain filepath.Join(root, p) allows when the image holds, say, a symlink
// /data -> /etc (the mount would cover the host's /etc).
//
// Components that do not exist yet are joined as they are, so the result
// can be created as a mount point. The check is done before mounting, so a
// process that changes the rootfs at the same moment could still race it;
// runc closes that gap by re-opening the target through /proc/self/fd.
func SecureJoin(root, p string) (string, error) {
	resolved := "/" // inside root, always clean and absolute
	remaining := p
	links := 0
	for remaining != "" {
		var part string
		part, remaining, _ = strings.Cut(remaining, "/")
		switch part {
		case "", ".":
			continue
		case "..":
			resolved = path.Dir(resolved) // path.Dir("/") is "/": no way up
			continue
		}
		next := path.Join(resolved, part)
		fi, err := os.Lstat(filepath.Join(root, next))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			resolved = next
			continue
		case err != nil:
			return "", err
		case fi.Mode()&fs.ModeSymlink == 0:
			resolved = next
			continue
		}
		if links++; links > maxSymlinks {
			return "", &os.PathError{Op: "resolve", Path: p, Err: unix.ELOOP}
		}
		dest, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if path.IsAbs(dest) {
			resolved = "/"
		}
		// Resolve the link's text first, then what was left of p.
		remaining = dest + "/" + remaining
	}
	if resolved == "/" {
		return filepath.Clean(root), nil
	}
	return filepath.Join(root, resolved), nil
}

// mountPoint resolves p inside root and creates it when missing: a
// directory, or an empty file when file is true (a bind mount of a file
// needs a file to cover).
func mountPoint(root, p string, file bool) (string, error) {
	target, err := SecureJoin(root, p)
	if err != nil {
		return "", fmt.Errorf("resolving %s in %s: %w", p, root, err)
	}
	if _, err := os.Stat(target); err == nil {
		return target, nil
	}
	if !file {
		return target, os.MkdirAll(target, 0o755)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return "", err
	}
	f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return "", err
	}
	return target, f.Close()
}
