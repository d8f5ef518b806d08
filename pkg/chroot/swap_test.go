package chroot

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/internal/testenv"
)

// swapPoints are the points of Setup (setup.at) where a host user who owns
// the rootfs's parent directory might rename it: after every step from the
// rootfs's one lookup on, and between the mknod and the chmod of each
// device, the window the reviewer widened with strace.
func swapPoints() []string {
	points := []string{
		"opening the rootfs",
		"mounting the root filesystem",
		"bind-mounting the rootfs",
		"mounting /proc",
		"mounting /sys",
		"mounting /sys/fs/cgroup",
		"setting up /dev",
		"mounting volumes",
		"making --device nodes",
		"pivoting root",
		"masking paths",
		"making paths read-only",
	}
	for _, d := range devices {
		points = append(points, "mknod "+d.name)
	}
	return append(points, "mknod mydev") // the --device node
}

// TestSetupSwappedRootfsParent replays review 7's attack on the init: once
// Setup has resolved the rootfs, the owner of its parent renames the parent
// away and puts in its place a symlink to a tree of theirs whose dev/null
// points at a host file (the victim, mode 0600). An init that walks the
// rootfs's path again would mknod, mkdir and symlink in that tree on the
// host's disk, chmod the victim 0666 and pivot into the wrong root. Setup
// is paused at each point where that would matter, the swap is made there,
// and then: the victim keeps its mode, the tree gains nothing, and the
// container still runs in the real rootfs.
func TestSetupSwappedRootfsParent(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	if err := testenv.StaticBusybox(); err != nil {
		t.Skip(err)
	}
	for _, point := range swapPoints() {
		t.Run(strings.ReplaceAll(point, " ", "_"), func(t *testing.T) {
			base := t.TempDir()
			parent, rootfs := filepath.Join(base, "p"), filepath.Join(base, "p", "rfs")
			victim, evil := filepath.Join(base, "victim"), filepath.Join(base, "evil")
			if err := os.Mkdir(parent, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := testenv.BusyboxRootfs(rootfs); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(victim, []byte("secret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, d := range []string{"dev", "proc", "sys"} {
				if err := os.MkdirAll(filepath.Join(evil, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Symlink(victim, filepath.Join(evil, "dev/null")); err != nil {
				t.Fatal(err)
			}
			// A --device node (the test's own c 1:7) whose mode and owner
			// a path-based chmod and chown would give the victim instead.
			if err := os.Symlink(victim, filepath.Join(evil, "dev/mydev")); err != nil {
				t.Fatal(err)
			}
			host := filepath.Join(base, "full")
			if err := unix.Mknod(host, unix.S_IFCHR|0o640, int(unix.Mkdev(1, 7))); err != nil {
				t.Fatal(err)
			}
			mydev := Device{Path: "/dev/mydev", HostPath: host, Mode: unix.S_IFCHR | 0o640, Major: 1, Minor: 7, UID: 1000, GID: 1001}
			evilBefore := listTree(t, evil)

			swapped := false
			swap := func() {
				// What the attacker types: mv p p.old; mkdir p; ln -s evil p/rfs
				if err := os.Rename(parent, parent+".old"); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(parent, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(evil, rootfs); err != nil {
					t.Fatal(err)
				}
				// Positive control: the path now leads to the attacker's tree.
				if got, err := filepath.EvalSymlinks(rootfs); err != nil || got != evil {
					t.Fatalf("after the swap %s resolves to %q (%v), want %s", rootfs, got, err, evil)
				}
				swapped = true
			}
			// The host-side checks run even when the child fails (t.Fatal).
			defer func() {
				var st unix.Stat_t
				if err := unix.Stat(victim, &st); err != nil || st.Mode&0o7777 != 0o600 || st.Uid != 0 || st.Gid != 0 {
					t.Errorf("victim: mode %o owner %d:%d (%v), want 0600 0:0 (the init chmod'ed or chown'ed a host file)", st.Mode, st.Uid, st.Gid, err)
				}
				if data, err := os.ReadFile(victim); string(data) != "secret\n" || err != nil {
					t.Errorf("victim now holds %q (%v)", data, err)
				}
				if after := listTree(t, evil); !slices.Equal(evilBefore, after) {
					t.Errorf("the init wrote into the attacker's tree on the host:\nbefore %v\nafter  %v", evilBefore, after)
				}
				// Nor on the real rootfs's disk: its /dev stays empty.
				if entries, _ := os.ReadDir(filepath.Join(parent+".old", "rfs", "dev")); len(entries) != 0 {
					t.Errorf("the host sees %d entries in the real rootfs's dev", len(entries))
				}
			}()
			cfg := insideConfig{Rootfs: rootfs, PauseAt: point, Devices: []Device{mydev}}
			results, stderr := runPaused(t, cfg, newNS, nil, swap)
			if !swapped {
				t.Fatalf("the swap at %q never ran", point)
			}
			wantChecks(t, results, "pid1", "rootfs-only", "dev-null", "dev-zero", "dev-links", "masked-files-null", "proc-sys-ro", "sys-ro", "devices")
			if t.Failed() {
				t.Logf("trace:\n%s", stderr)
			}
		})
	}
}

// listTree lists every path below dir with its mode, sorted.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		out = append(out, strings.TrimPrefix(p, dir)+" "+fi.Mode().String())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestSetupRefusesSwappedMountPoint swaps a name between the mount Setup
// makes on a directory and its lookup of that mount's root (the one name
// it looks up again): the rootfs in its parent, /proc or /dev inside the
// rootfs, replaced by a fresh directory or a symlink to the attacker's
// tree. Setup must refuse, and write nothing into what it was sent to.
func TestSetupRefusesSwappedMountPoint(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	if err := testenv.StaticBusybox(); err != nil {
		t.Skip(err)
	}
	for _, tc := range []struct {
		point, step, name string // name: what is swapped, below base/p
		link              bool   // a symlink to base/evil instead of a directory
	}{
		{"reopening the rootfs", "bind-mounting the rootfs", "rfs", false},
		{"reopening the rootfs", "bind-mounting the rootfs", "rfs", true},
		{"reopening /proc", "mounting /proc", "rfs/proc", false},
		{"reopening /dev", "setting up /dev", "rfs/dev", false},
		{"reopening /dev", "setting up /dev", "rfs/dev", true},
	} {
		t.Run(strings.ReplaceAll(tc.point, " ", "_")+map[bool]string{true: "_symlink"}[tc.link], func(t *testing.T) {
			base := t.TempDir()
			rootfs, evil := filepath.Join(base, "p", "rfs"), filepath.Join(base, "evil")
			if err := testenv.BusyboxRootfs(rootfs); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(evil, 0o755); err != nil {
				t.Fatal(err)
			}
			swapped := filepath.Join(base, "p", tc.name)
			swap := func() {
				if err := os.Rename(swapped, swapped+".real"); err != nil {
					t.Fatal(err)
				}
				var err error
				if tc.link {
					err = os.Symlink(evil, swapped)
				} else {
					err = os.Mkdir(swapped, 0o755)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			got := runToFailure(t, insideConfig{Rootfs: rootfs, Cgroups: []CgroupMount{}, PauseAt: tc.point}, swap)
			if !strings.HasPrefix(got, "FAIL setup: "+tc.step+": ") {
				t.Errorf("Setup after the swap at %q: %q, want a refusal in %q", tc.point, got, tc.step)
			}
			if !tc.link && !strings.HasSuffix(got, errRedirected.Error()) {
				t.Errorf("Setup after the swap at %q: %q, want %q", tc.point, got, errRedirected)
			}
			for _, dir := range []string{evil, swapped} {
				if entries, err := os.ReadDir(dir); err == nil && len(entries) != 0 {
					t.Errorf("Setup wrote %v into %s", entries, dir)
				}
			}
		})
	}
}

// runToFailure runs the child with cfg.PauseAt, calls swap at the pause,
// and returns the child's next line: Setup's verdict.
func runToFailure(t *testing.T, cfg insideConfig, swap func()) string {
	t.Helper()
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"chroot-inside"}
	cmd.Env = append(os.Environ(), "CHROOT_TEST_CONFIG="+string(data))
	cmd.SysProcAttr = newNS
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	out := bufio.NewScanner(stdout)
	if !out.Scan() || out.Text() != "paused "+cfg.PauseAt {
		t.Fatalf("child did not pause at %q: %q\n%s", cfg.PauseAt, out.Text(), errBuf.String())
	}
	swap()
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	out.Scan()
	return out.Text()
}

// TestSetupMasksMovedProc renames the rootfs's /proc, with the proc mount
// Setup made on it, once that mount is made, and puts an empty directory
// in its place: masks applied by path would look in the empty directory
// and leave the real /proc, now at /proc.real, unmasked and writable.
// Setup finds the masked and read-only paths from the proc mount's
// descriptor, so they stay masked wherever it went.
func TestSetupMasksMovedProc(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	rootfs := busyboxRootfs(t)
	swap := func() {
		if err := os.Rename(filepath.Join(rootfs, "proc"), filepath.Join(rootfs, "proc.real")); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(rootfs, "proc"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := insideConfig{Rootfs: rootfs, PauseAt: "setting up /dev", MovedProc: "/proc.real", Only: []string{"moved-proc-masked"}}
	results, _ := runPaused(t, cfg, newNS, nil, swap)
	wantChecks(t, results, "moved-proc-masked")
}
