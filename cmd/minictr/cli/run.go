package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/pkg/cgroups"
	"github.com/minictr/minictr/pkg/container"
	"github.com/minictr/minictr/pkg/image"
)

// runFlags are the flags of `minictr run`, as docker spells them.
type runFlags struct {
	rootfs       string
	pull         string
	platform     string
	entrypoint   string
	hostname     string
	memory       string
	memorySwap   string
	cpus         string
	cpuShares    int64
	pidsLimit    int64
	env          []string
	envFiles     []string
	workdir      string
	user         string
	readOnly     bool
	capAdd       []string
	capDrop      []string
	privileged   bool
	securityOpt  []string
	rm           bool
	interactive  bool
	tty          bool
	noNewKeyring bool
	userns       string
	devices      []string

	entrypointSet bool // --entrypoint was given, perhaps as ""
}

// forwardedSignals are passed on to the container's process, as docker does.
var forwardedSignals = []os.Signal{
	syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH,
}

func newRunCmd(g *globals) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run [flags] IMAGE [COMMAND [ARG...]]\n  minictr run --rootfs DIR [flags] [--] COMMAND [ARG...]",
		Short: "Run a command in a new container",
		Long: "Run a command in a new container made from an image (pulled when missing)\n" +
			"or from a root filesystem directory (--rootfs). The container gets its own\n" +
			"PID, mount, UTS, IPC, network and cgroup namespaces, a cgroup with the\n" +
			"given limits, and docker's default capabilities. Its exit status becomes\n" +
			"minictr's.",
		Example: "  minictr run --rm busybox echo hello\n" +
			"  minictr run --rootfs ./rootfs --memory 64m --hostname box -- sh -c 'hostname; ps'",
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("entrypoint") {
				f.entrypointSet = true
			}
			opts, err := f.options(g, args)
			if err != nil {
				return err
			}
			sigs := make(chan os.Signal, 8)
			signal.Notify(sigs, forwardedSignals...)
			defer signal.Stop(sigs)
			// minictr copies the container's output to its own stdout: a
			// reader that goes away must fail that copy (EPIPE), not kill
			// minictr with SIGPIPE before it removes the container. (A
			// handled signal, unlike an ignored one, is not inherited by
			// the container's process.)
			signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
			opts.Signals = sigs
			return container.Run(context.Background(), opts)
		},
	}
	// Everything after the first argument belongs to the container's command.
	cmd.Flags().SetInterspersed(false)
	fl := cmd.Flags()
	fl.StringVar(&f.rootfs, "rootfs", "", "run from this root filesystem directory instead of an image")
	fl.StringVar(&f.pull, "pull", "missing", `pull the image before running: "missing", "always" or "never"`)
	fl.StringVar(&f.platform, "platform", "", "os/arch[/variant] to pull (default: this host's)")
	fl.StringVar(&f.entrypoint, "entrypoint", "", "replace the image's entrypoint (and drop its Cmd)")
	fl.StringVarP(&f.hostname, "hostname", "h", "", "container host name (default: the short container ID)")
	fl.StringVarP(&f.memory, "memory", "m", "", "memory limit (e.g. 64m, 1g)")
	fl.StringVar(&f.memorySwap, "memory-swap", "", "memory plus swap limit; -1 for unlimited swap")
	fl.StringVar(&f.cpus, "cpus", "", "number of CPUs (e.g. 0.5)")
	fl.Int64VarP(&f.cpuShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	fl.Int64Var(&f.pidsLimit, "pids-limit", 0, "maximum number of processes (0 or -1: unlimited)")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "set an environment variable (KEY=VALUE, or KEY to copy it from here)")
	fl.StringArrayVar(&f.envFiles, "env-file", nil, "read environment variables from a file")
	fl.StringVarP(&f.workdir, "workdir", "w", "", "working directory inside the container")
	fl.StringVarP(&f.user, "user", "u", "", "user as name|uid[:group|gid]")
	fl.BoolVar(&f.readOnly, "read-only", false, "mount the container's root filesystem read-only")
	fl.StringSliceVar(&f.capAdd, "cap-add", nil, "add Linux capabilities (or ALL)")
	fl.StringSliceVar(&f.capDrop, "cap-drop", nil, "drop Linux capabilities (or ALL)")
	fl.BoolVar(&f.privileged, "privileged", false, "give all capabilities, lift the masked and read-only paths, no seccomp filter")
	fl.StringArrayVar(&f.securityOpt, "security-opt", nil, "security options: no-new-privileges[=true|false], seccomp=unconfined, seccomp=PROFILE.json (docker's format)")
	fl.BoolVar(&f.noNewKeyring, "no-new-keyring", false, "keep minictr's session keyring instead of a fresh one (runc's flag; lowers a wall)")
	_ = fl.MarkHidden("no-new-keyring")
	fl.BoolVarP(&f.interactive, "interactive", "i", false, "give the container minictr's stdin (without it: /dev/null)")
	fl.BoolVarP(&f.tty, "tty", "t", false, "give the container a terminal of its own (in raw mode with -i)")
	fl.StringVar(&f.userns, "userns", "host", `user namespace: "host" (root inside is the host's), or "auto" (root inside is an unprivileged uid from /etc/subuid's ranges for "minictr")`)
	fl.StringArrayVar(&f.devices, "device", nil, "add a host device: HOST[:CONTAINER][:rwm] (CONTAINER defaults to HOST, the access to rwm)")
	fl.BoolVar(&f.rm, "rm", true, "remove the container when it exits (always, until container lifecycle commands exist)")
	// -h is --hostname, as in docker; help stays reachable as --help.
	cmd.Flags().BoolP("help", "", false, "help for run")
	return cmd
}

// options turns the flags into the engine's options, refusing bad values
// before anything is created on the host.
func (f *runFlags) options(g *globals, args []string) (container.RunOptions, error) {
	var o container.RunOptions
	if f.rootfs == "" && len(args) == 0 {
		return o, usageError{fmt.Errorf(`"run" needs an image, or --rootfs DIR, and a command`)}
	}
	if f.rootfs != "" && len(args) == 0 {
		return o, usageError{fmt.Errorf(`"run" needs a command to run in the container`)}
	}
	res, err := f.resources()
	if err != nil {
		return o, usageError{err}
	}
	if err := checkHostname(f.hostname); err != nil {
		return o, usageError{err}
	}
	env, err := buildEnv(f.envFiles, f.env)
	if err != nil {
		return o, usageError{err}
	}
	sec, err := parseSecurityOpts(f.securityOpt)
	if err != nil {
		return o, usageError{err}
	}
	devices, err := parseDevices(f.devices)
	if err != nil {
		return o, usageError{err}
	}
	if f.tty && f.interactive {
		// Docker's check: keystrokes for a terminal must come from one.
		if !readsTerminal(g.stdin) {
			return o, usageError{errors.New("the input device is not a TTY")}
		}
	}
	o = container.RunOptions{
		Spec: container.Spec{
			Process: container.Process{
				Args:            args,
				Env:             env,
				Workdir:         f.workdir,
				User:            f.user,
				NoNewPrivileges: sec.noNewPrivs,
			},
			Rootfs:     f.rootfs,
			Hostname:   f.hostname,
			ReadOnly:   f.readOnly,
			Privileged: f.privileged,
			CapAdd:     f.capAdd,
			CapDrop:    f.capDrop,
			Resources:  res,
			Devices:    devices,
			Seccomp:    sec.seccomp,
			OpenStdin:  f.interactive,
			Tty:        f.tty,
			// A wall lowered, as runc's --no-new-keyring: for tests and
			// lessons that show what the fresh keyring stops.
			NoNewKeyring: f.noNewKeyring,
		},
		Root:    g.root,
		RunRoot: g.runRoot,
		Warn:    func(msg string) { fmt.Fprintf(g.stderr, "minictr: warning: %s\n", msg) },
		Stdin:   g.stdin,
		Stdout:  g.stdout,
		Stderr:  g.stderr,
		Tracer:  g.tracer(),
	}
	if err := f.userNamespace(&o); err != nil {
		return o, usageError{err}
	}
	if f.rootfs == "" {
		if err := f.fromImage(g, args[0], &o); err != nil {
			return o, err
		}
	}
	if g.explain {
		o.TraceFile = os.Stderr
	}
	return o, nil
}

// fromImage finds the image (pulling it as --pull says), completes the
// process the flags describe with the image's configuration, as docker
// does, and lets the container lease the image.
func (f *runFlags) fromImage(g *globals, ref string, o *container.RunOptions) error {
	store, img, err := f.image(g, ref)
	if err != nil {
		return err
	}
	p := &o.Spec.Process
	p.Args = p.Args[1:] // after the image name: the image's Cmd, replaced
	c := img.Config.Config
	ic := container.ImageConfig{Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, WorkingDir: c.WorkingDir, User: c.User}
	var entrypoint *string
	if f.entrypointSet {
		entrypoint = &f.entrypoint
	}
	if err := ic.Merge(p, entrypoint); err != nil {
		return err
	}
	o.Spec.Image, o.Spec.Layers = img.ID, img.Layers
	o.Lease = func(ctx context.Context, containerID string) (func() error, error) {
		return store.Lease(ctx, containerID, img.ID)
	}
	return nil
}

// image returns the local image, pulling it first when --pull asks. Pull
// progress goes to stderr, so the container's stdout stays its own.
func (f *runFlags) image(g *globals, ref string) (*image.Store, *image.Image, error) {
	if f.pull != "missing" && f.pull != "always" && f.pull != "never" {
		return nil, nil, usageError{fmt.Errorf(`invalid --pull %q: want "missing", "always" or "never"`, f.pull)}
	}
	opts := image.PullOptions{}
	if f.platform != "" {
		p, err := image.ParsePlatform(f.platform)
		if err != nil {
			return nil, nil, usageError{err}
		}
		opts.Platform = &p
	}
	progress := newProgress(g.stderr, false)
	store, err := g.imageStore()
	if err != nil {
		return nil, nil, err
	}
	if f.pull != "always" {
		img, err := store.Get(ref)
		if err == nil && opts.Platform != nil {
			// Another platform's image is missing here, as for docker:
			// --pull never refuses it, otherwise pull the one asked for.
			err = img.CheckPlatform(ref, *opts.Platform)
		}
		if err == nil || !errors.Is(err, image.ErrNotFound) && !errors.Is(err, image.ErrPlatform) || f.pull == "never" {
			return store, img, err
		}
		fmt.Fprintf(g.stderr, "Unable to find image '%s' locally\n", ref)
	}
	ctx, cancel := interruptible()
	defer cancel()
	client := g.registryClient(progress, nil)
	img, err := client.Pull(ctx, store, ref, opts)
	progress.Wait()
	if err != nil {
		return nil, nil, loginHint(client, ref, err)
	}
	return store, img, nil
}

// minMemory is docker's smallest memory limit: below it the container's
// first process cannot even start.
const minMemory = 6 << 20

func (f *runFlags) resources() (cgroups.Resources, error) {
	var r cgroups.Resources
	if f.memory != "" {
		m, err := parseBytes(f.memory)
		if err != nil {
			return r, fmt.Errorf("invalid --memory %q: %w", f.memory, err)
		}
		if m != 0 && m < minMemory { // 0 means no limit, as in docker
			return r, fmt.Errorf("invalid --memory %q: the minimum memory limit is 6MiB, too little for any process", f.memory)
		}
		r.Memory = m
	}
	if f.memorySwap != "" && f.memorySwap != "0" { // 0: unset, as in docker
		if f.memorySwap == "-1" {
			r.MemorySwap = -1
		} else {
			s, err := parseBytes(f.memorySwap)
			if err != nil {
				return r, fmt.Errorf("invalid --memory-swap %q: %w", f.memorySwap, err)
			}
			if r.Memory == 0 {
				return r, fmt.Errorf("--memory-swap needs --memory: it limits memory plus swap")
			}
			if s < r.Memory {
				return r, fmt.Errorf("invalid --memory-swap %q: it is memory plus swap, so it must be at least --memory %q", f.memorySwap, f.memory)
			}
			r.MemorySwap = s
		}
	}
	if f.cpus != "" {
		n, err := strconv.ParseFloat(f.cpus, 64)
		if err != nil {
			return r, fmt.Errorf("invalid --cpus %q: not a number", f.cpus)
		}
		if host := runtime.NumCPU(); n <= 0 || n > float64(host) {
			return r, fmt.Errorf("invalid --cpus %q: the range is from 0.01 to %d.00, as there are only %d CPUs available", f.cpus, host, host)
		}
		r.CPUPeriod = 100000
		r.CPUQuota = int64(n * 100000)
		if r.CPUQuota < 1000 {
			return r, fmt.Errorf("invalid --cpus %q: the smallest is 0.01", f.cpus)
		}
	}
	if f.cpuShares != 0 {
		if f.cpuShares < 2 || f.cpuShares > 262144 {
			return r, fmt.Errorf("invalid --cpu-shares %d: the range is 2 to 262144", f.cpuShares)
		}
		r.CPUShares = f.cpuShares
	}
	switch {
	case f.pidsLimit > 0:
		r.PidsLimit = f.pidsLimit
	case f.pidsLimit < -1:
		return r, fmt.Errorf("invalid --pids-limit %d: use a positive number, or 0 or -1 for no limit", f.pidsLimit)
	}
	return r, nil
}

// checkHostname refuses what sethostname(2) would, before anything exists:
// at most 64 bytes (HOST_NAME_MAX), and RFC 1123 characters so that the
// name also works in /etc/hosts and DNS.
func checkHostname(h string) error {
	if h == "" {
		return nil
	}
	if len(h) > 64 {
		return fmt.Errorf("invalid --hostname %q: longer than 64 characters", h)
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") ||
			strings.Trim(label, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" {
			return fmt.Errorf("invalid --hostname %q: use letters, digits and hyphens, in dot-separated labels", h)
		}
	}
	return nil
}

// securityOpts are the --security-opt values this engine understands.
type securityOpts struct {
	noNewPrivs bool
	seccomp    string // "" (the default profile), "unconfined" or a profile file
}

// parseSecurityOpts reads docker's spellings: no-new-privileges[=BOOL],
// seccomp=unconfined, seccomp=builtin (the default) and seccomp=FILE.
// The profile file is read by the engine, before anything is created.
func parseSecurityOpts(opts []string) (securityOpts, error) {
	var s securityOpts
	for _, o := range opts {
		key, val, hasVal := strings.Cut(o, "=")
		switch key {
		case "no-new-privileges":
			s.noNewPrivs = true
			if hasVal {
				b, err := strconv.ParseBool(val)
				if err != nil {
					return s, fmt.Errorf("invalid --security-opt %q: want true or false", o)
				}
				s.noNewPrivs = b
			}
		case "seccomp":
			switch {
			case val == "":
				return s, fmt.Errorf("invalid --security-opt %q: want seccomp=unconfined or seccomp=PROFILE.json", o)
			case val == "builtin":
				s.seccomp = ""
			default:
				s.seccomp = val // "unconfined", or a file
			}
		default:
			return s, fmt.Errorf("invalid --security-opt %q: want no-new-privileges or seccomp=unconfined|PROFILE.json", o)
		}
	}
	return s, nil
}

// parseDevices reads each --device and stats its host node, so that a
// device that is missing, or is no device, stops the run before anything
// exists.
func parseDevices(values []string) ([]cgroups.DeviceNode, error) {
	var nodes []cgroups.DeviceNode
	for _, v := range values {
		n, err := cgroups.ParseDevice(v)
		if err != nil {
			// ParseDevice's errors begin `device "VALUE": `.
			return nil, fmt.Errorf("invalid --%w", err)
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// readsTerminal reports whether r is a terminal (isatty(3): a terminal
// answers TCGETS; /dev/null, also a character device, does not).
func readsTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// userNamespace passes --userns on, with the subordinate ID files: the
// system's, or MINICTR_SUBUID and MINICTR_SUBGID (tests and the lab use
// their own, and leave the host's alone).
func (f *runFlags) userNamespace(o *container.RunOptions) error {
	if f.userns != container.UserNSHost && f.userns != container.UserNSAuto {
		return fmt.Errorf(`invalid --userns %q: want "host" or "auto"`, f.userns)
	}
	o.Spec.UserNS = f.userns
	o.SubUIDFile, o.SubGIDFile = os.Getenv("MINICTR_SUBUID"), os.Getenv("MINICTR_SUBGID")
	return nil
}
