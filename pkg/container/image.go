package container

import (
	"fmt"
	"slices"
)

// ImageConfig is the part of an image's configuration that says how to
// run it (the OCI image config's Entrypoint, Cmd, Env, WorkingDir, User).
type ImageConfig struct {
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
	User       string
}

// Overrides are the run flags that change what the image says.
type Overrides struct {
	Entrypoint *string  // --entrypoint; nil when not given, "" to clear it
	Args       []string // the command line after the image name
	Env        []string // -e and --env-file, already merged
	Workdir    string   // -w
	User       string   // -u
}

// ErrNoCommand is returned when neither the image nor the flags name a
// command to run.
var ErrNoCommand = fmt.Errorf("%w: no command specified (the image has neither Entrypoint nor Cmd)", ErrInvalidSpec)

// Merge fills the process fields of s as docker does:
//   - the command is Entrypoint followed by Cmd; arguments after the image
//     name replace Cmd; --entrypoint replaces Entrypoint *and* drops the
//     image's Cmd, since that Cmd was written for the old entrypoint;
//   - the environment is the image's, then the flags' (a later value of the
//     same name wins);
//   - -w and -u replace WorkingDir and User when given.
func (ic ImageConfig) Merge(o Overrides, s *Spec) error {
	entrypoint, cmd := ic.Entrypoint, ic.Cmd
	if o.Entrypoint != nil {
		entrypoint, cmd = nil, nil
		if *o.Entrypoint != "" {
			entrypoint = []string{*o.Entrypoint}
		}
	}
	if len(o.Args) > 0 {
		cmd = o.Args
	}
	s.Args = append(slices.Clone(entrypoint), cmd...)
	if len(s.Args) == 0 {
		return ErrNoCommand
	}
	s.Env = append(slices.Clone(ic.Env), o.Env...)
	s.Workdir = ic.WorkingDir
	if o.Workdir != "" {
		s.Workdir = o.Workdir
	}
	s.User = ic.User
	if o.User != "" {
		s.User = o.User
	}
	return nil
}
