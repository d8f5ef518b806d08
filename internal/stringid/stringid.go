// Package stringid shortens the 64-digit IDs of images and containers to
// the 12 digits docker shows (`docker images`, `docker ps`, a container's
// host name). It is a leaf: pkg/image, pkg/container and cmd/ all use it,
// and pkg/image may not import pkg/container.
package stringid

import "strings"

// ShortLen is how many hex digits a short ID keeps, as docker's.
const ShortLen = 12

// Short drops an algorithm prefix ("sha256:") and keeps the first 12
// digits: "sha256:4fc4…" and "4fc4…" both give "4fc4…" (12 digits). A
// shorter ID is returned whole.
func Short(id string) string {
	if _, hex, ok := strings.Cut(id, ":"); ok {
		id = hex
	}
	if len(id) > ShortLen {
		return id[:ShortLen]
	}
	return id
}
