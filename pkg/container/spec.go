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
	"github.com/minictr/minictr/pkg/resolve"
)

// Spec is what a container is made of.
type Spec struct {
	Rootfs          string   // root filesystem directory on the host, or:
	Image           string   // the image ID the container runs, with
	Layers          []string // its unpacked layers, top first: the root is an overlay snapshot of them
	Args            []string // the command and its arguments
	Env             []string // KEY=VALUE, added to the defaults
	Workdir         string   // absolute path inside the container; "" is "/"
	User            string   // name|uid[:group|gid]; "" is root
	Hostname        string   // "" is the short container ID
	ReadOnly        bool     // mount the root filesystem read-only
	Privileged      bool     // all capabilities, no masked or read-only paths
	CapAdd, CapDrop []string
	NoNewPrivileges bool // set no_new_privs: setuid binaries gain nothing
	Resources       cgroups.Resources
}

// DefaultPath is the PATH a container gets when it sets none, as in docker.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ErrInvalidSpec is wrapped by every error about a spec that cannot run.
var ErrInvalidSpec = errors.New("invalid container spec")

// validate checks what can be checked before anything is created.
func (s *Spec) validate() error {
	if len(s.Layers) > 0 {
		return s.validateProcess()
	}
	if s.Rootfs == "" {
		return fmt.Errorf("%w: no root filesystem given", ErrInvalidSpec)
	}
	fi, err := os.Stat(s.Rootfs)
	if err != nil {
		return fmt.Errorf("%w: root filesystem: %w", ErrInvalidSpec, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: root filesystem %s is not a directory", ErrInvalidSpec, s.Rootfs)
	}
	if err := s.validateProcess(); err != nil {
		return err
	}
	return s.validateWorkdir()
}

// validateProcess checks the command and environment.
func (s *Spec) validateProcess() error {
	if len(s.Args) == 0 || s.Args[0] == "" {
		return fmt.Errorf("%w: no command to run", ErrInvalidSpec)
	}
	if s.Workdir != "" && !filepath.IsAbs(s.Workdir) {
		return fmt.Errorf("%w: working directory %q is not an absolute path", ErrInvalidSpec, s.Workdir)
	}
	for _, e := range s.Env {
		if !strings.Contains(e, "=") || strings.HasPrefix(e, "=") {
			return fmt.Errorf("%w: environment entry %q is not KEY=VALUE", ErrInvalidSpec, e)
		}
	}
	return nil
}

// validateWorkdir checks the working directory against the root
// filesystem, once there is one.
func (s *Spec) validateWorkdir() error {
	if s.Workdir == "" {
		return nil
	}
	if err := checkInside(s.Rootfs, s.Workdir); err != nil {
		return fmt.Errorf("%w: working directory %s: %w", ErrInvalidSpec, s.Workdir, err)
	}
	return nil
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
