package snapshot

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/internal/testenv"
	"github.com/minictr/minictr/pkg/image/layer"
)

// hostRoot is where the tests' maps send the container's root.
const hostRoot = 300000

var testMaps = []IDMap{{ContainerID: 0, HostID: hostRoot, Size: 65536}}

// userNamespace returns a user namespace with testMaps: that of a sleep
// started in one, as the engine's is that of the container's init.
func userNamespace(t *testing.T) *os.File {
	t.Helper()
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: hostRoot, Size: 65536}}
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: m, GidMappings: m}
	must(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid))
	must(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}

// idmapExpected says whether the kernel should idmap mounts of dir's
// filesystem: overlayfs takes idmapped layers since Linux 5.19, tmpfs
// (the lab VM's /tmp) can be idmapped since 6.3; ext4, xfs and btrfs since
// before 5.19.
func idmapExpected(t *testing.T, dir string) (bool, string) {
	t.Helper()
	var st unix.Statfs_t
	must(t, unix.Statfs(dir, &st))
	switch {
	case !testenv.KernelAtLeast(5, 19):
		return false, "overlayfs takes idmapped layers since Linux 5.19"
	case st.Type == unix.TMPFS_MAGIC && !testenv.KernelAtLeast(6, 3):
		return false, dir + " is on tmpfs, which can be idmapped since Linux 6.3"
	}
	return true, ""
}

// needIDMap skips a test of idmapped layers where the kernel cannot make
// them in dir, and only there.
func needIDMap(t *testing.T, dir string) {
	t.Helper()
	if ok, why := idmapExpected(t, dir); !ok {
		t.Skip(why + " (the engine uses a chown'd copy there)")
	}
}

// asUID runs f with the file system uid and gid id, as a process of the
// container's root does its file work, on a thread of its own.
func asUID(t *testing.T, id int, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread's fsuid changed
		unix.Setfsgid(id)
		unix.Setfsuid(id)
		f()
	}()
	<-done
}

// The overlay of idmapped layers: the container's root sees the image's
// files (host root's) as its own, the opaque directories and whiteouts
// hold (the engine mounts, so trusted.overlay.* is read), its writes land
// in upper/ owned by its host uid, and nothing is mounted on the host.
func TestDetachIDMapped(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	base := t.TempDir()
	needIDMap(t, base)
	layers := unpackLayers(t, base)
	dir := filepath.Join(base, "snap")
	s, err := Prepare(dir, layers, Options{Kind: Overlay, UIDMap: testMaps, GIDMap: testMaps})
	must(t, err)
	for _, d := range []string{dir, dir + "/upper", dir + "/work", dir + "/rootfs"} {
		if st := lstat(t, d); st.Uid != hostRoot || st.Gid != hostRoot {
			t.Errorf("%s owned by %d:%d, want the mapped root %d", d, st.Uid, st.Gid, hostRoot)
		}
	}
	ms := s.Mounts()
	if len(ms) != 1 || !IDMapped(ms[0]) || !slices.Contains(ms[0].Options, "uidmap=0:300000:65536") || !slices.Contains(ms[0].Options, "gidmap=0:300000:65536") {
		t.Fatalf("Mounts = %v, want an overlay with uidmap= and gidmap=", ms)
	}
	loaded, err := Load(dir)
	must(t, err)
	if fmt.Sprint(loaded.Mounts()) != fmt.Sprint(ms) {
		t.Errorf("Load lost the maps: %v", loaded.Mounts())
	}

	before, _ := os.ReadFile("/proc/self/mountinfo")
	f, err := Detach(ms[0], userNamespace(t), nil)
	must(t, err)
	defer f.Close()
	if after, _ := os.ReadFile("/proc/self/mountinfo"); !bytes.Equal(before, after) {
		t.Errorf("Detach changed the mount table")
	}
	root := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
	checkMerged(t, root)
	if st := lstat(t, root+"/etc/passwd"); st.Uid != hostRoot {
		t.Errorf("an image file shows owned by %d, want the container's root %d", st.Uid, hostRoot)
	}
	asUID(t, hostRoot, func() {
		if err := os.WriteFile(root+"/etc/new", []byte("new"), 0o644); err != nil {
			t.Errorf("the container's root cannot write: %v", err)
		}
		if err := os.WriteFile(root+"/etc/passwd", []byte("changed"), 0o644); err != nil {
			t.Errorf("the container's root cannot change an image file: %v", err)
		}
	})
	for _, p := range []string{"upper/etc/new", "upper/etc/passwd"} {
		if st := lstat(t, filepath.Join(dir, p)); st.Uid != hostRoot || st.Gid != hostRoot {
			t.Errorf("%s owned by %d:%d, want %d", p, st.Uid, st.Gid, hostRoot)
		}
	}
	if st := lstat(t, layers[1]+"/etc/passwd"); st.Uid != 0 || readFile(t, layers[1]+"/etc/passwd") != "root\n" {
		t.Errorf("the layer's etc/passwd changed: uid %d", st.Uid)
	}
}

func TestProbeIDMap(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	dir := t.TempDir()
	// Its answer matches what the kernel and filesystem should do, either way.
	want, because := idmapExpected(t, dir)
	if ok, why := ProbeIDMap(dir, userNamespace(t)); ok != want || !ok && !strings.Contains(why, "invalid argument") {
		t.Fatalf("ProbeIDMap = %v (%s), want %v %s", ok, why, want, because)
	}
	// The host's own namespace cannot idmap (the kernel's EPERM).
	self, err := os.Open("/proc/self/ns/user")
	must(t, err)
	defer self.Close()
	if ok, why := ProbeIDMap(dir, self); ok || !strings.Contains(why, "idmapped mounts unavailable") {
		t.Errorf("ProbeIDMap through the initial user namespace = %v (%s), want false", ok, why)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the probe left %v", entries)
	}
}

// The chown'd copy: each owner moved into the range, an owner the range
// lacks becomes its nobody, setuid bits survive the chown.
func TestChownedCopy(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	base := t.TempDir()
	lay := filepath.Join(base, "layer")
	must(t, os.Mkdir(lay, 0o755))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	must(t, tw.WriteHeader(&tar.Header{Name: "usr/bin/passwd", Typeflag: tar.TypeReg, Mode: 0o4755, Uid: 1000, Gid: 29, Size: 1}))
	_, _ = tw.Write([]byte("x"))
	must(t, tw.WriteHeader(&tar.Header{Name: "far", Typeflag: tar.TypeReg, Mode: 0o2644, Uid: 70000, Gid: 70000}))
	must(t, tw.WriteHeader(&tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "usr", Uid: 5, Gid: 6}))
	must(t, tw.Close())
	if _, err := layer.Unpack(&buf, lay, layer.Options{}); err != nil {
		t.Fatal(err)
	}
	s, err := Prepare(filepath.Join(base, "snap"), []string{lay}, Options{Kind: Copy, Apply: apply, UIDMap: testMaps, GIDMap: testMaps})
	must(t, err)
	for p, want := range map[string][3]uint32{
		"":               {hostRoot, hostRoot, 0o755},
		"usr/bin/passwd": {hostRoot + 1000, hostRoot + 29, 0o4755},
		"far":            {hostRoot + 65534, hostRoot + 65534, 0o2644},
		"link":           {hostRoot + 5, hostRoot + 6, 0o777},
	} {
		st := lstat(t, filepath.Join(s.Rootfs(), p))
		if got := [3]uint32{st.Uid, st.Gid, st.Mode & 0o7777}; got != want {
			t.Errorf("/%s: uid gid mode %v, want %v", p, got, want)
		}
	}
	if st := lstat(t, s.Dir); st.Uid != hostRoot {
		t.Errorf("the snapshot directory belongs to %d, want %d", st.Uid, hostRoot)
	}
	if len(s.Mounts()) != 0 {
		t.Errorf("a copy has mounts: %v", s.Mounts())
	}
}

// However many layers: 3 fit one lowerdir of /proc/self/fd paths, 40 need
// the relative names, 100 need lowerdir+ (Linux 6.8).
func TestDetachManyLayers(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	needIDMap(t, os.TempDir())
	userns := userNamespace(t)
	for _, n := range []int{3, 40, 100} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			if n == 100 && !testenv.KernelAtLeast(6, 8) {
				t.Skip("more than some 80 idmapped layers need lowerdir+ (Linux 6.8)")
			}
			base := t.TempDir()
			var lowers []string
			for i := 0; i < n; i++ {
				l := filepath.Join(base, fmt.Sprintf("l%d", i))
				must(t, os.Mkdir(l, 0o755))
				must(t, os.WriteFile(filepath.Join(l, fmt.Sprintf("f%d", i)), nil, 0o644))
				must(t, os.WriteFile(filepath.Join(l, "top"), []byte(fmt.Sprint(i)), 0o644))
				lowers = append(lowers, l)
			}
			s, err := Prepare(filepath.Join(base, "snap"), lowers, Options{Kind: Overlay, UIDMap: testMaps, GIDMap: testMaps})
			must(t, err)
			f, err := Detach(s.Mounts()[0], userns, nil)
			must(t, err)
			defer f.Close()
			root := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
			if got := readFile(t, root+"/top"); got != "0" {
				t.Errorf("top = %q, want the first (top) layer's 0", got)
			}
			if got := names(t, root); len(got) != n+1 {
				t.Errorf("%d entries in the root, want %d", len(got), n+1)
			}
			if st := lstat(t, fmt.Sprintf("%s/f%d", root, n-1)); st.Uid != hostRoot {
				t.Errorf("the bottom layer's file shows owned by %d, want %d", st.Uid, hostRoot)
			}
		})
	}
}
