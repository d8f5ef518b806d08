package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A DeviceType is the kind of device node a [DeviceRule] is about, in the
// letters of the v1 devices controller.
type DeviceType byte

const (
	CharDevice  DeviceType = 'c' // a character device: /dev/null, a tty
	BlockDevice DeviceType = 'b' // a block device: a disk, a loop device
	AnyDevice   DeviceType = 'a' // every device: only as "a *:* rwm", which both drivers can express
)

// Wildcard stands for every major or every minor number ("*" in a rule).
const Wildcard int64 = -1

// A DeviceRule allows or denies access to device nodes. Access is a subset
// of "rwm": read, write, and mknod(2), the creation of a node.
//
// A list of rules is read in order and the last rule that matches an access
// decides it; an access no rule matches is denied. An allow rule matches
// when it grants everything asked for (opening 1:3 for "rw" needs a rule
// with both r and w), a deny rule when it refuses any of it.
//
// The v1 devices controller keeps a default and a set of exceptions rather
// than an ordered list, and a deny rule there removes only the exception
// of exactly its type, major and minor: a deny rule that carves part of an
// earlier, wider allow rule (deny c 1:3 after allow c 1:*) holds on v2 only.
// Neither docker's defaults nor --device make such a list.
type DeviceRule struct {
	Type         DeviceType
	Major, Minor int64 // a number or Wildcard
	Access       string
	Allow        bool
}

// String is the rule as the v1 devices.allow and devices.deny files take
// it ("c 1:3 rwm", "c 136:* rwm"), followed by "allow" or "deny".
func (r DeviceRule) String() string {
	verdict := "deny"
	if r.Allow {
		verdict = "allow"
	}
	return r.entry() + " " + verdict
}

// entry is the rule without its verdict, as the v1 files take it.
func (r DeviceRule) entry() string {
	if r.Type == AnyDevice {
		return "a"
	}
	num := func(n int64) string {
		if n == Wildcard {
			return "*"
		}
		return strconv.FormatInt(n, 10)
	}
	return fmt.Sprintf("%c %s:%s %s", r.Type, num(r.Major), num(r.Minor), r.Access)
}

// allowAll and denyAll say whether the rule is "a *:* rwm".
func (r DeviceRule) allowAll() bool { return r.Type == AnyDevice && r.Allow }
func (r DeviceRule) denyAll() bool  { return r.Type == AnyDevice && !r.Allow }

// charRule is an allow rule for one character device, or all of a major's.
func charRule(major, minor int64, access string) DeviceRule {
	return DeviceRule{Type: CharDevice, Major: major, Minor: minor, Access: access, Allow: true}
}

// DefaultDevices are docker's default device rules (runc's AllowedDevices,
// which docker relies on), on top of "deny everything":
//
//	c *:* m      mknod of any character device
//	b *:* m      mknod of any block device
//	c 1:3 rwm    /dev/null
//	c 1:5 rwm    /dev/zero
//	c 1:7 rwm    /dev/full
//	c 1:8 rwm    /dev/random
//	c 1:9 rwm    /dev/urandom
//	c 5:0 rwm    /dev/tty
//	c 5:1 rwm    /dev/console
//	c 5:2 rwm    /dev/ptmx
//	c 136:* rwm  /dev/pts/N, the pseudo-terminals
//	c 10:200 rwm /dev/net/tun
//
// So a container may make any node (it has CAP_MKNOD), but opens none but
// these: `mknod /dev/l b 7 0` works, opening it fails with EPERM. The
// tun/tap rule was dropped in runc 1.2.0 and put back in 1.2.4 because
// users relied on it; using a tun device also needs CAP_NET_ADMIN, which a
// default container lacks. Append the user's --device rules to a copy:
//
//	devices := append(slices.Clone(cgroups.DefaultDevices), userRules...)
var DefaultDevices = []DeviceRule{
	{Type: CharDevice, Major: Wildcard, Minor: Wildcard, Access: "m", Allow: true},
	{Type: BlockDevice, Major: Wildcard, Minor: Wildcard, Access: "m", Allow: true},
	charRule(1, 3, "rwm"),
	charRule(1, 5, "rwm"),
	charRule(1, 7, "rwm"),
	charRule(1, 8, "rwm"),
	charRule(1, 9, "rwm"),
	charRule(5, 0, "rwm"),
	charRule(5, 1, "rwm"),
	charRule(5, 2, "rwm"),
	charRule(136, Wildcard, "rwm"),
	charRule(10, 200, "rwm"),
}

// AllowAllDevices is the rule of a --privileged container: every device,
// every access. Resources{Devices: []DeviceRule{AllowAllDevices}} still
// installs a device filter (a program that allows everything on v2); nil
// Devices installs none.
var AllowAllDevices = DeviceRule{Type: AnyDevice, Major: Wildcard, Minor: Wildcard, Access: "rwm", Allow: true}

// validateDevices rejects rules neither driver can express.
func validateDevices(rules []DeviceRule) error {
	for _, r := range rules {
		if err := r.validate(); err != nil {
			return fmt.Errorf("%w: device rule %q: %v", ErrInvalidResources, r.entry(), err)
		}
	}
	return nil
}

func (r DeviceRule) validate() error {
	switch r.Type {
	case CharDevice, BlockDevice:
	case AnyDevice:
		if r.Major != Wildcard || r.Minor != Wildcard || r.Access != "rwm" {
			return errors.New(`type "a" means every device: use it only as a *:* rwm`)
		}
		return nil
	default:
		return fmt.Errorf("type %q is not c, b or a", rune(r.Type))
	}
	if r.Major < Wildcard || r.Minor < Wildcard || r.Major > 0xfff || r.Minor > 0xfffff {
		return fmt.Errorf("device number %d:%d is out of range", r.Major, r.Minor)
	}
	return checkAccess(r.Access)
}

// checkAccess accepts a non-empty subset of "rwm", each letter once.
func checkAccess(access string) error {
	if access == "" {
		return errors.New("no access given (want a subset of rwm)")
	}
	seen := map[rune]bool{}
	for _, c := range access {
		if !strings.ContainsRune("rwm", c) || seen[c] {
			return fmt.Errorf("access %q is not a subset of rwm", access)
		}
		seen[c] = true
	}
	return nil
}

// A DeviceNode is a host device to make in the container's /dev, as
// docker's --device asks: the engine adds [DeviceNode.Rule] to the
// cgroup's rules and hands the node to the container's init to mknod.
type DeviceNode struct {
	HostPath     string      // the device on the host: "/dev/fuse"
	Path         string      // where it appears in the container: "/dev/fuse"
	Type         DeviceType  // CharDevice or BlockDevice
	Major, Minor int64       // the device number, from stat(2) of HostPath
	Mode         fs.FileMode // the permission bits of HostPath
	UID, GID     uint32      // the owner of HostPath
	Access       string      // the access --device grants: "rwm" unless given
}

// Rule is the allow rule for exactly this node.
func (n DeviceNode) Rule() DeviceRule {
	return DeviceRule{Type: n.Type, Major: n.Major, Minor: n.Minor, Access: n.Access, Allow: true}
}

// ErrNotDevice is the error of ParseDevice for a path that is no device node.
var ErrNotDevice = errors.New("not a device node")

// ParseDevice reads a --device value, HOST[:CONTAINER][:ACCESS] as docker
// takes it ("/dev/fuse", "/dev/sdc:/dev/xvdc", "/dev/fuse:rw"), and
// stat(2)s the host device. CONTAINER defaults to HOST, ACCESS to "rwm".
// A host path that does not exist is an error matching fs.ErrNotExist, one
// that exists but is no character or block device one matching
// ErrNotDevice. (Docker also takes a directory and adds each device under
// it; this takes one node.)
func ParseDevice(value string) (DeviceNode, error) {
	parts := strings.Split(value, ":")
	var host, ctr, access string
	switch len(parts) {
	case 1:
		host = parts[0]
	case 2:
		host = parts[0]
		if checkAccess(parts[1]) == nil {
			access = parts[1]
		} else {
			ctr = parts[1]
		}
	case 3:
		host, ctr, access = parts[0], parts[1], parts[2]
	default:
		return DeviceNode{}, fmt.Errorf("device %q: want HOST[:CONTAINER][:rwm]", value)
	}
	if ctr == "" {
		ctr = host
	}
	if access == "" {
		access = "rwm"
	}
	if err := checkAccess(access); err != nil {
		return DeviceNode{}, fmt.Errorf("device %q: %w", value, err)
	}
	if !filepath.IsAbs(host) || !filepath.IsAbs(ctr) {
		return DeviceNode{}, fmt.Errorf("device %q: paths must be absolute", value)
	}
	var st unix.Stat_t
	if err := unix.Stat(host, &st); err != nil {
		return DeviceNode{}, fmt.Errorf("device %q: %w", value, &os.PathError{Op: "stat", Path: host, Err: err})
	}
	n := DeviceNode{
		HostPath: host, Path: filepath.Clean(ctr), Access: access,
		Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev)),
		Mode: fs.FileMode(st.Mode & 0o777), UID: st.Uid, GID: st.Gid,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		n.Type = CharDevice
	case unix.S_IFBLK:
		n.Type = BlockDevice
	default:
		return DeviceNode{}, fmt.Errorf("device %q: %s: %w", value, host, ErrNotDevice)
	}
	return n, nil
}
