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

// ErrNoCommand is returned when neither the image nor the flags name a
// command to run.
var ErrNoCommand = fmt.Errorf("%w: no command specified (the image has neither Entrypoint nor Cmd)", ErrInvalidSpec)

// Merge completes p, which holds what the user asked for (the command line
// after the image name as Args, -e, -w, -u), with the image's defaults, as
// docker does:
//   - the command is Entrypoint followed by Cmd; arguments after the image
//     name replace Cmd; an entrypoint given (--entrypoint, non-nil)
//     replaces Entrypoint *and* drops the image's Cmd, since that Cmd was
//     written for the old entrypoint; "" clears it;
//   - the environment is the image's, then the user's (a later value of the
//     same name wins);
//   - the working directory and user are the image's unless given.
func (ic ImageConfig) Merge(p *Process, entrypoint *string) error {
	ep, cmd := ic.Entrypoint, ic.Cmd
	if entrypoint != nil {
		ep, cmd = nil, nil
		if *entrypoint != "" {
			ep = []string{*entrypoint}
		}
	}
	if len(p.Args) > 0 {
		cmd = p.Args
	}
	p.Args = append(slices.Clone(ep), cmd...)
	if len(p.Args) == 0 {
		return ErrNoCommand
	}
	p.Env = append(slices.Clone(ic.Env), p.Env...)
	if p.Workdir == "" {
		p.Workdir = ic.WorkingDir
	}
	if p.User == "" {
		p.User = ic.User
	}
	return nil
}
