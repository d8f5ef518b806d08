package layer

import (
	"fmt"
	"strings"
)

// The whiteout names of the image spec (image-spec layer.md, from AUFS).
const (
	whiteoutPrefix = ".wh."         // ".wh.NAME" deletes NAME of the layers below
	whiteoutMeta   = ".wh..wh."     // reserved for AUFS metadata
	opaqueWhiteout = ".wh..wh..opq" // hides everything below in its directory
)

// overlayfs marks an opaque directory with this extended attribute.
const opaqueXattr = "trusted.overlay.opaque"

// isWhiteout reports whether base names a whiteout entry.
func isWhiteout(base string) bool { return strings.HasPrefix(base, whiteoutPrefix) }

// parseWhiteout reads a whiteout base name: either opaque, or the name of the
// file it deletes. A target of "", "." or ".." would delete the directory
// itself or its parent, and one holding "/" would reach elsewhere: those are
// refused. (A target such as "a..b" is an ordinary file name and is fine.)
func parseWhiteout(base string) (target string, opaque bool, err error) {
	if base == opaqueWhiteout {
		return "", true, nil
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		return "", false, fmt.Errorf("%w: unsupported AUFS metadata %q", ErrWhiteout, base)
	}
	target = strings.TrimPrefix(base, whiteoutPrefix)
	switch {
	case target == "":
		return "", false, fmt.Errorf("%w: %q names no file", ErrWhiteout, base)
	case target == "." || target == "..":
		return "", false, fmt.Errorf("%w: %q would delete its own directory or its parent", ErrWhiteout, base)
	case strings.ContainsRune(target, '/'):
		return "", false, fmt.Errorf("%w: %q holds a path", ErrWhiteout, base)
	}
	return target, false, nil
}
