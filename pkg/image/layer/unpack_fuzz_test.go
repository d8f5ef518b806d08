package layer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minictr/minictr/internal/imagetest"
	"golang.org/x/sys/unix"
)

// fuzzMaxSize caps what one fuzzed layer may write.
const fuzzMaxSize = 1 << 20

// FuzzUnpack feeds arbitrary tar streams to Unpack and Apply. The layer
// directory sits in a temporary directory beside a sibling tree, and
// already holds symlinks that point out of it (to "..", to the sibling by
// relative and by absolute path), as an earlier layer could have left
// them. Whatever the stream holds:
//   - nothing outside the layer directory changes (the sibling tree and
//     the temporary directory itself; the hostile fixtures' /tmp targets
//     are left to TestHostileFixtures, as other tests on this host may
//     run the same fixtures at the same time);
//   - an error is one line;
//   - no more than MaxSize bytes of file contents are written;
//   - Unpack leaves no device node but the 0/0 whiteouts, Apply none at all.
//
// Header checksums are repaired before the stream is read (see
// imagetest.FixTarChecksums), so a mutated header reaches the unpacker.
func FuzzUnpack(f *testing.F) {
	fixtures, err := imagetest.HostileFixtures(hostileDir)
	if err != nil {
		f.Fatal(err)
	}
	for _, h := range fixtures {
		data := readFixture(f, h.File)
		f.Add(data, false)
		f.Add(data, true)
	}
	f.Add(fuzzTar(f, reg("etc/passwd", "root:x:0:0::/root:/bin/sh\n"), sym("bin/sh", "busybox"),
		ent{name: "etc/.wh.shadow", typ: tar.TypeReg}, ent{name: "usr/.wh..wh..opq", typ: tar.TypeReg},
		ent{name: "h", link: "etc/passwd", typ: tar.TypeLink}), true)
	f.Add(fuzzTar(f, reg("up/x", "through a symlink to .."), reg("sib/x", "through a symlink to the sibling"),
		reg("abs/x", "through an absolute symlink"), ent{name: "up/.wh.sibling", typ: tar.TypeReg}), false)
	f.Fuzz(func(t *testing.T, data []byte, apply bool) {
		base := t.TempDir()
		target := filepath.Join(base, "target")
		sibling := filepath.Join(base, "sibling")
		for _, d := range []string{target, sibling} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(sibling, "file"), []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
		for name, to := range map[string]string{"up": "..", "sib": "../sibling", "abs": sibling, "sibfile": "../sibling/file"} {
			if err := os.Symlink(to, filepath.Join(target, name)); err != nil {
				t.Fatal(err)
			}
		}
		before := outside(t, base)

		fn := Unpack
		if apply {
			fn = Apply
		}
		stats, err := fn(bytes.NewReader(imagetest.FixTarChecksums(data)), target, Options{MaxSize: fuzzMaxSize})

		if err != nil && strings.ContainsAny(err.Error(), "\r\n") {
			t.Errorf("error of more than one line: %q", err)
		}
		if stats.Bytes > fuzzMaxSize {
			t.Errorf("wrote %d bytes of contents, over MaxSize %d", stats.Bytes, fuzzMaxSize)
		}
		after := outside(t, base)
		for p, d := range before {
			if after[p] != d {
				t.Errorf("outside the layer, %s changed: %q -> %q", p, d, after[p])
			}
		}
		for p, d := range after {
			if _, ok := before[p]; !ok {
				t.Errorf("outside the layer, %s appeared: %q", p, d)
			}
		}
		checkDevices(t, target, apply)
	})
}

// outside describes everything under base except the layer directory's
// contents.
func outside(t *testing.T, base string) map[string]string {
	t.Helper()
	all := tree(t, base)
	for p := range all {
		if strings.HasPrefix(p, "target"+string(filepath.Separator)) {
			delete(all, p)
		}
	}
	return all
}

// checkDevices fails on a device node in dir other than an Unpack
// whiteout (a character device 0/0).
func checkDevices(t *testing.T, dir string, apply bool) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil {
			return nil
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFBLK:
			t.Errorf("%s is a block device", p)
		case unix.S_IFCHR:
			if apply || st.Rdev != 0 {
				t.Errorf("%s is a character device %d:%d (apply=%v)", p, unix.Major(st.Rdev), unix.Minor(st.Rdev), apply)
			}
		}
		return nil
	})
}

// readFixture reads a hostile fixture, decompressed; only a bounded part of
// a compressed one (the bomb expands to 64 MiB, and a seed must be small).
func readFixture(f *testing.F, name string) []byte {
	data, err := os.ReadFile(filepath.Join(hostileDir, name))
	if err != nil {
		f.Fatal(err)
	}
	if !strings.HasSuffix(name, ".gz") {
		return data
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		f.Fatal(err)
	}
	out, _ := io.ReadAll(io.LimitReader(zr, 64<<10)) // truncated.tar.gz ends early: keep what there is
	return out
}

// fuzzTar is tarOf for seeds.
func fuzzTar(f *testing.F, entries ...ent) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode,
			Size: int64(len(e.body)), ModTime: testTime, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			f.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			f.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		f.Fatal(err)
	}
	return buf.Bytes()
}
