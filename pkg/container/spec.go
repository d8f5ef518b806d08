package container

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/pkg/cgroups"
	"github.com/minictr/minictr/pkg/privileges"
	"github.com/minictr/minictr/pkg/resolve"
)

// Spec is what a container is made of.
type Spec struct {
	Process                  // what runs, as whom
	Rootfs          string   // root filesystem directory on the host, or:
	Image           string   // the image ID the container runs, with
	Layers          []string // its unpacked layers, top first: the root is a snapshot of them
	Hostname        string   // "" is the short container ID
	ReadOnly        bool     // mount the root filesystem read-only
	Privileged      bool     // all capabilities, no masked or read-only paths
	CapAdd, CapDrop []string // changes to docker's default capabilities
	UserNS          string   // "" or UserNSHost: the host's user namespace; UserNSAuto: one of its own
	Resources       cgroups.Resources
	// Devices are host devices the container gets (docker's --device):
	// each is made at its Path in the container, and its rule follows
	// the default device rules in the container's cgroup.
	Devices []cgroups.DeviceNode
	// Seccomp is the syscall filter: "" for docker's default profile,
	// SeccompUnconfined for none, or a profile file in docker's JSON
	// format. Privileged containers are unconfined, as in docker.
	Seccomp string
	// OpenStdin (-i) gives the container RunOptions.Stdin; without it the
	// container's stdin is /dev/null, as in docker.
	OpenStdin bool
	// Tty (-t) gives the container a terminal of its own as stdin, stdout
	// and stderr, instead of pipes.
	Tty bool
	// NoNewKeyring keeps the engine's session keyring for the container
	// instead of a fresh one (runc's --no-new-keyring): a wall lowered,
	// for tests and lessons that show what the fresh keyring stops.
	NoNewKeyring bool
}

// Process is the program a container runs and its identity: what the user
// asks for in a Spec, and what the init receives to exec it.
type Process struct {
	Args    []string `json:"args"`              // the command and its arguments
	Env     []string `json:"env,omitempty"`     // KEY=VALUE, added to the defaults
	Workdir string   `json:"workdir,omitempty"` // absolute path inside the container; "" is "/"
	User    string   `json:"user,omitempty"`    // name|uid[:group|gid]; "" is root
	// Capabilities the process keeps. Run fills it from the Spec's CapAdd,
	// CapDrop and Privileged; a value set here is replaced.
	Capabilities    []string `json:"capabilities,omitempty"`
	NoNewPrivileges bool     `json:"noNewPrivileges,omitempty"` // set no_new_privs: setuid binaries gain nothing
}

// DefaultPath is the PATH a container gets when it sets none, as in docker.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ErrInvalidSpec is wrapped by every error about a spec that cannot run.
var ErrInvalidSpec = errors.New("invalid container spec")

// validate checks, once and before anything is created, all that can be
// checked: the root filesystem directory, the command, environment and
// working directory, and the capabilities, which it resolves into the
// process the init will run. Where the working directory leads inside an
// image's root is checked by the init, which alone sees the root the
// snapshot makes (enterWorkdir); a --rootfs directory is checked here.
func (s *Spec) validate() (Process, error) {
	p := s.Process
	if len(s.Layers) == 0 {
		if s.Rootfs == "" {
			return p, fmt.Errorf("%w: no root filesystem given", ErrInvalidSpec)
		}
		fi, err := os.Stat(s.Rootfs)
		if err != nil {
			return p, fmt.Errorf("%w: root filesystem: %w", ErrInvalidSpec, err)
		}
		if !fi.IsDir() {
			return p, fmt.Errorf("%w: root filesystem %s is not a directory", ErrInvalidSpec, s.Rootfs)
		}
	}
	if len(p.Args) == 0 || p.Args[0] == "" {
		return p, fmt.Errorf("%w: no command to run", ErrInvalidSpec)
	}
	if p.Workdir != "" && !filepath.IsAbs(p.Workdir) {
		return p, fmt.Errorf("%w: working directory %q is not an absolute path", ErrInvalidSpec, p.Workdir)
	}
	for _, e := range p.Env {
		if !strings.Contains(e, "=") || strings.HasPrefix(e, "=") {
			return p, fmt.Errorf("%w: environment entry %q is not KEY=VALUE", ErrInvalidSpec, e)
		}
	}
	if len(s.Layers) == 0 && p.Workdir != "" {
		// The root is here already: refuse before anything is created.
		if err := checkInside(s.Rootfs, p.Workdir); err != nil {
			return p, fmt.Errorf("%w: working directory %s: %w", ErrInvalidSpec, p.Workdir, err)
		}
	}
	if err := s.checkUserNS(); err != nil {
		return p, err
	}
	for _, d := range s.Devices {
		if !filepath.IsAbs(d.Path) || !filepath.IsAbs(d.HostPath) || d.Type != cgroups.CharDevice && d.Type != cgroups.BlockDevice {
			return p, fmt.Errorf("%w: device %s:%s: want absolute paths and a character or block device", ErrInvalidSpec, d.HostPath, d.Path)
		}
	}
	caps, err := privileges.Capabilities(s.CapAdd, s.CapDrop, s.Privileged)
	if err != nil {
		return p, err
	}
	p.Capabilities = caps
	return p, nil
}

// errEscapes is returned for a path whose symlinks lead out of the root.
var errEscapes = errors.New("resolves outside the root filesystem")

// checkInside resolves path inside root as the container will see it
// (pkg/resolve's InRoot mode: absolute links and ".." stay in the root, as
// they will after pivot_root) and reports what makes it unusable: a symlink
// loop, or a file where a directory must be. A path that does not exist yet
// is fine: it is created at start, inside the root.
func checkInside(root, path string) error {
	rf, err := resolve.OpenRoot(root)
	if err != nil {
		return err
	}
	defer rf.Close()
	f, err := resolve.Open(rf, path, resolve.InRoot, unix.O_PATH, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err // the spec error names the path already
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// newID returns a random 64-hex-digit container ID, as docker's.
func newID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}
