// Command hostilegen writes the hostile layer fixtures of testdata/hostile:
// tar archives that try to escape the directory they are unpacked into, bad
// whiteouts, a gzip bomb and truncated blobs, with a README.md table of what
// each tries and the error pkg/image/layer must answer; and a second table
// of layers whose names only look hostile (a root entry "/" as umoci writes
// it, absolute and "./" names), which must unpack below the target.
//
//	go run ./internal/hostilegen -o testdata/hostile
//
// The output is deterministic, and a test regenerates it into a temporary
// directory and compares, so the committed fixtures never drift from here.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// A fixture is one hostile file.
type fixture struct {
	file  string   // name in testdata/hostile
	tries string   // what it tries, for the README
	entry string   // the entry the error must name
	want  string   // a substring of the error
	lands []string // for a layer that must unpack: paths it must create below the target
	tar   []*entry // the archive's entries
	gzip  bool     // compress it
	cut   int      // keep only the first cut bytes (0 = all)
}

// An entry is a tar header with its contents.
type entry struct {
	hdr  tar.Header
	data []byte
}

var epoch = time.Unix(1700000000, 0)

func file(name string, data []byte) *entry {
	return &entry{tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data)), ModTime: epoch}, data}
}

func dir(name string) *entry {
	return &entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}}
}

func symlink(name, target string) *entry {
	return &entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777, ModTime: epoch}}
}

func hardlink(name, target string) *entry {
	return &entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target, Mode: 0o644, ModTime: epoch}}
}

func device(name string, typ byte, major, minor int64) *entry {
	return &entry{hdr: tar.Header{Name: name, Typeflag: typ, Devmajor: major, Devminor: minor, Mode: 0o600, ModTime: epoch}}
}

// noise returns n bytes that do not compress (a SHA-256 counter stream), so
// that cutting a compressed blob in half cuts through file contents.
func noise(n int) []byte {
	var out []byte
	for i := 0; len(out) < n; i++ {
		sum := sha256.Sum256([]byte(fmt.Sprint(i)))
		out = append(out, sum[:]...)
	}
	return out[:n]
}

func fixtures() []fixture {
	bomb := []*entry{dir("bomb/")}
	for i := range 64 {
		bomb = append(bomb, file(fmt.Sprintf("bomb/%02d", i), make([]byte, 1<<20)))
	}
	xattr := file("evil", []byte("x"))
	xattr.hdr.PAXRecords = map[string]string{"SCHILY.xattr.trusted.overlay.redirect": "/etc"}
	return []fixture{
		{file: "dotdot.tar", tries: "a file next to the layer directory", entry: "../escape", want: `".." component`,
			tar: []*entry{file("../escape", []byte("escaped\n"))}},
		{file: "dotdot-deep.tar", tries: "`..` hidden after real directories", entry: "a/b/../../../escape", want: `".." component`,
			tar: []*entry{dir("a/"), dir("a/b/"), file("a/b/../../../escape", []byte("escaped\n"))}},
		{file: "absolute-dotdot.tar", tries: "an absolute path climbing out through `..` once its `/` is stripped", entry: "/../tmp/minictr-hostile-absolute", want: `".." component`,
			tar: []*entry{file("/../tmp/minictr-hostile-absolute", []byte("escaped\n"))}},
		{file: "symlink-relative.tar", tries: "a symlink to `..`, then a file through it", entry: "link/escape", want: "resolves outside",
			tar: []*entry{symlink("link", ".."), file("link/escape", []byte("escaped\n"))}},
		{file: "symlink-absolute.tar", tries: "a symlink to /tmp, then a file through it", entry: "link/minictr-hostile-symlink", want: "resolves outside",
			tar: []*entry{symlink("link", "/tmp"), file("link/minictr-hostile-symlink", []byte("escaped\n"))}},
		{file: "symlink-chain.tar", tries: "a symlink to a symlink to `..`, then a file through it", entry: "a/escape", want: "resolves outside",
			tar: []*entry{symlink("b", ".."), symlink("a", "b"), file("a/escape", []byte("escaped\n"))}},
		{file: "symlink-replaces-dir.tar", tries: "a directory replaced by a symlink to `..`, then a file through it", entry: "d/escape", want: "resolves outside",
			tar: []*entry{dir("d/"), file("d/ok", []byte("ok\n")), symlink("d", ".."), file("d/escape", []byte("escaped\n"))}},
		{file: "symlink-loop.tar", tries: "two symlinks pointing at each other, then a file through them", entry: "a/x", want: "too many levels of symbolic links",
			tar: []*entry{symlink("a", "b"), symlink("b", "a"), file("a/x", []byte("x\n"))}},
		{file: "hardlink-dotdot.tar", tries: "a hard link to a file outside the layer", entry: "h", want: "hard link target",
			tar: []*entry{hardlink("h", "../outside")}},
		{file: "hardlink-absolute.tar", tries: "a hard link to /etc/passwd", entry: "h", want: "hard link target",
			tar: []*entry{hardlink("h", "/etc/passwd")}},
		{file: "hardlink-via-symlink.tar", tries: "a hard link through a symlink to /etc", entry: "h", want: "resolves outside",
			tar: []*entry{symlink("s", "/etc"), hardlink("h", "s/passwd")}},
		{file: "hardlink-to-symlink.tar", tries: "a hard link to a symlink to /etc/passwd", entry: "h", want: "hard link target",
			tar: []*entry{symlink("s", "/etc/passwd"), hardlink("h", "s")}},
		{file: "hardlink-missing.tar", tries: "a hard link to a file that is not there", entry: "h", want: "hard link target",
			tar: []*entry{hardlink("h", "nothing")}},
		{file: "chardev.tar", tries: "a character device (/dev/mem-like access)", entry: "dev/mem", want: "device nodes",
			tar: []*entry{dir("dev/"), device("dev/mem", tar.TypeChar, 1, 1)}},
		{file: "blockdev.tar", tries: "a block device (the host's disk)", entry: "dev/vda", want: "device nodes",
			tar: []*entry{dir("dev/"), device("dev/vda", tar.TypeBlock, 253, 0)}},
		{file: "whiteout-empty.tar", tries: "a whiteout naming nothing (`.wh.` alone)", entry: "etc/.wh.", want: "names no file",
			tar: []*entry{dir("etc/"), file("etc/.wh.", nil)}},
		{file: "whiteout-dot.tar", tries: "a whiteout of `.` (`.wh..`): its own directory", entry: "etc/.wh..", want: "its own directory or its parent",
			tar: []*entry{dir("etc/"), file("etc/.wh..", nil)}},
		{file: "whiteout-dotdot.tar", tries: "a whiteout of `..` (`.wh...`): the parent directory", entry: "etc/.wh...", want: "its own directory or its parent",
			tar: []*entry{dir("etc/"), file("etc/.wh...", nil)}},
		{file: "whiteout-traversal.tar", tries: "a whiteout outside the layer", entry: "../.wh.escape", want: `".." component`,
			tar: []*entry{file("../.wh.escape", nil)}},
		{file: "whiteout-traversal-deep.tar", tries: "a whiteout path climbing out through `..`", entry: "a/../../.wh.etc", want: `".." component`,
			tar: []*entry{dir("a/"), file("a/../../.wh.etc", nil)}},
		{file: "whiteout-aufs.tar", tries: "AUFS metadata (`.wh..wh.plnk`)", entry: ".wh..wh.plnk/", want: "unsupported AUFS metadata",
			tar: []*entry{dir(".wh..wh.plnk/")}},
		{file: "xattr-overlay.tar", tries: "an overlayfs redirect xattr smuggled in a PAX header", entry: "evil", want: "overlayfs attribute",
			tar: []*entry{xattr}},
		{file: "truncated.tar", tries: "a blob cut in the middle of a file", entry: "big", want: "unexpected EOF",
			tar: []*entry{file("big", noise(64<<10))}, cut: 512 + 10000},
		{file: "truncated.tar.gz", tries: "a compressed blob cut in the middle of a file", entry: "big", want: "unexpected EOF",
			tar: []*entry{file("big", noise(64<<10))}, gzip: true, cut: 32 << 10},
		{file: "bomb.tar.gz", tries: "a gzip bomb: ~64 KiB that unpacks to 64 MiB (64 files of 1 MiB)", entry: "bomb/01", want: "exceeds the size limit",
			tar: bomb, gzip: true},

		// Layers that look hostile and are not: they must unpack, below
		// the target, as docker, containerd and GNU tar unpack them.
		{file: "umoci-root.tar", tries: "a root entry `/`, as `umoci insert DIR /` writes it", lands: []string{"etc/hello"},
			tar: []*entry{dir("/"), dir("etc/"), file("etc/hello", []byte("hello\n"))}},
		{file: "absolute.tar", tries: "an absolute name, which would be a host path", lands: []string{"tmp/minictr-hostile-absolute"},
			tar: []*entry{file("/tmp/minictr-hostile-absolute", []byte("contained\n"))}},
		{file: "absolute-names.tar", tries: "every name absolute, a hard link to an absolute name too", lands: []string{"etc/passwd", "etc/passwd-link", "bin/sh"},
			tar: []*entry{dir("/"), dir("/etc/"), file("/etc/passwd", []byte("root:x:0:0::/root:/bin/sh\n")),
				hardlink("/etc/passwd-link", "/etc/passwd"), dir("/bin/"), symlink("/bin/sh", "/bin/busybox")}},
		{file: "dot-slash.tar", tries: "`./` before every name, as `tar -C DIR -c .` writes them", lands: []string{"etc/hostname", "etc/hostname-link", "var/run"},
			tar: []*entry{dir("./"), dir("./etc/"), file("./etc/hostname", []byte("box\n")),
				hardlink("./etc/hostname-link", "./etc/hostname"), dir("./var/"), symlink("./var/run", "../run")}},
		{file: "dotdot-inside.tar", tries: "a `..` that stays inside (`a/../b`)", lands: []string{"b"},
			tar: []*entry{dir("a/"), file("a/../b", []byte("b\n"))}},
	}
}

// build returns the fixture's bytes.
func (f fixture) build() ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range f.tar {
		e.hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(&e.hdr); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", f.file, e.hdr.Name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	out := buf.Bytes()
	if f.gzip {
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression) // a valid level: no error
		zw.Write(out)
		if err := zw.Close(); err != nil {
			return nil, err
		}
		out = gz.Bytes()
	}
	if f.cut > 0 {
		out = out[:f.cut]
	}
	return out, nil
}

const readmeHead = `# Hostile layer fixtures

Generated by ` + "`go run ./internal/hostilegen -o testdata/hostile`" + `; do not edit by hand
(a test regenerates them and compares). Each is an image layer that pkg/image/layer must refuse
with an error naming the entry and containing the expected text, writing nothing outside its
target directory. ` + "`.tar.gz`" + ` files are decompressed first; ` + "`bomb.tar.gz`" + ` is unpacked with
MaxSize 1 MiB.

| file | what it tries | entry | expected error |
|---|---|---|---|
`

const readmeContained = `
## Layers that must unpack, contained

Real tools write names that look hostile: ` + "`umoci insert`" + ` a root entry ` + "`/`" + `, others absolute
or ` + "`./`" + `-prefixed names. As docker, containerd and GNU tar do, pkg/image/layer strips the leading
` + "`/`" + ` and ` + "`./`" + ` and unpacks each below its target; only a name that would land outside is
refused (the table above). Each layer here must unpack without error, create the paths listed
below the target, and write nothing outside it.

| file | what it holds | lands at |
|---|---|---|
`

// generate writes every fixture and the README into dir.
func generate(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var refused, contained strings.Builder
	for _, f := range fixtures() {
		data, err := f.build()
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f.file), data, 0o644); err != nil {
			return err
		}
		if len(f.lands) > 0 {
			fmt.Fprintf(&contained, "| `%s` | %s | `%s` |\n", f.file, f.tries, strings.Join(f.lands, "`, `"))
			continue
		}
		fmt.Fprintf(&refused, "| `%s` | %s | `%s` | `%s` |\n", f.file, f.tries, f.entry, f.want)
	}
	readme := readmeHead + refused.String() + readmeContained + contained.String()
	return os.WriteFile(filepath.Join(dir, "README.md"), []byte(readme), 0o644)
}

func main() {
	out := flag.String("o", "testdata/hostile", "directory to write the fixtures into")
	flag.Parse()
	if err := generate(*out); err != nil {
		fmt.Fprintln(os.Stderr, "hostilegen:", err)
		os.Exit(1)
	}
}
