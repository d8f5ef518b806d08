//go:build !exercise

// Lesson 06: what an image is. `build` packs directories into an OCI image
// layout (gzipped tar layers, a config, a manifest, all named by the sha256
// of their bytes); `mount` unpacks its layers, turns whiteouts into the
// overlayfs form and mounts them as one copy-on-write tree.
package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

type config struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	RootFS       struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

func main() { os.Exit(run()) }

// The lab keeps the example layers here; lesson06 build uses them when
// given no directories.
var labLayers = []string{"/lab/06-images/base", "/lab/06-images/top"}

const usage = `usage: lesson06 build [-layout DIR] [LAYERDIR...]
       lesson06 mount [-layout DIR] [-dir WORK] [-write PATH=TEXT]

build packs each LAYERDIR (default: the lab's /lab/06-images/base and top)
into an OCI image layout; mount (as root) unpacks its layers and mounts
them with overlayfs. Example: lesson06 build -layout oci, then (as root)
lesson06 mount -layout oci -dir work`

func run() int {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		fmt.Fprintln(os.Stderr, "lesson06: no command: try lesson06 build -layout oci")
		return 2
	}
	switch os.Args[1] {
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(os.Stderr, usage)
		return 0
	}
	fs := flag.NewFlagSet("lesson06 "+os.Args[1], flag.ContinueOnError)
	layout := fs.String("layout", "oci", "OCI image layout directory")
	work := fs.String("dir", "work", "where mount unpacks layers and mounts the overlay")
	write := fs.String("write", "", "PATH=TEXT to write into the mounted image")
	fs.Usage = func() { fmt.Fprintln(fs.Output(), usage); fs.PrintDefaults() }
	if err := fs.Parse(os.Args[2:]); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	var err error
	switch os.Args[1] {
	case "build":
		dirs := fs.Args()
		if len(dirs) == 0 {
			dirs = labLayers
		}
		if err = checkDirs(dirs); err == nil {
			err = build(*layout, dirs)
		}
	case "mount":
		if _, statErr := os.Stat(filepath.Join(*layout, "index.json")); statErr != nil {
			err = fmt.Errorf("no image layout at %s (no %s/index.json): make one with: lesson06 build -layout %s BASEDIR TOPDIR (in the lab: lesson06 build -layout %s)", *layout, *layout, *layout, *layout)
		} else {
			err = mount(*layout, *work, *write)
		}
	default:
		fmt.Fprintln(os.Stderr, usage)
		err = fmt.Errorf("unknown command %q: want build or mount", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lesson06:", err)
		return 1
	}
	return 0
}

// checkDirs says which layer directory is missing and how to make one,
// rather than a bare ENOENT from the walk.
func checkDirs(dirs []string) error {
	for _, d := range dirs {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			return fmt.Errorf("no layer directory at %s: make one with: mkdir -p %s/etc && echo hello > %s/etc/hostname (in the lab: %s)", d, d, d, strings.Join(labLayers, " and "))
		}
	}
	return nil
}

// putBlob stores data under its own digest: content addressing.
func putBlob(layout, mediaType string, data []byte) (descriptor, error) {
	digest := fmt.Sprintf("sha256:%x", sha256.Sum256(data))
	err := os.WriteFile(filepath.Join(layout, "blobs/sha256", digest[7:]), data, 0o644)
	return descriptor{mediaType, digest, int64(len(data))}, err
}

// getBlob reads a blob and checks that its bytes still hash to its name.
func getBlob(layout, digest string) ([]byte, error) {
	data, err := os.ReadFile(filepath.Join(layout, "blobs/sha256", strings.TrimPrefix(digest, "sha256:")))
	if err == nil && fmt.Sprintf("sha256:%x", sha256.Sum256(data)) != digest {
		err = fmt.Errorf("blob %s: digest mismatch", digest)
	}
	return data, err
}

func build(layout string, dirs []string) error {
	err := os.MkdirAll(filepath.Join(layout, "blobs/sha256"), 0o755)
	if err != nil {
		return err
	}
	var cfg config
	cfg.Architecture, cfg.OS, cfg.RootFS.Type = "amd64", "linux", "layers"
	m := manifest{SchemaVersion: 2, MediaType: "application/vnd.oci.image.manifest.v1+json"}
	chain := ""
	for i, dir := range dirs {
		var tarball, gz strings.Builder
		if err := tarDir(&tarball, dir); err != nil {
			return err
		}
		zw := gzip.NewWriter(&gz)
		io.WriteString(zw, tarball.String())
		zw.Close()
		diffID := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(tarball.String()))) // the uncompressed tar
		layer, err := putBlob(layout, "application/vnd.oci.image.layer.v1.tar+gzip", []byte(gz.String()))
		if err != nil {
			return err
		}
		chain = chainID(chain, diffID)
		fmt.Printf("layer %d digest %s diff_id %s chain_id %s\n", i, layer.Digest, diffID, chain)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, diffID)
		m.Layers = append(m.Layers, layer)
	}
	data, _ := json.Marshal(cfg) // plain structs: Marshal cannot fail
	m.Config, err = putBlob(layout, "application/vnd.oci.image.config.v1+json", data)
	if err != nil {
		return err
	}
	data, _ = json.Marshal(m)
	top, err := putBlob(layout, m.MediaType, data)
	if err != nil {
		return err
	}
	fmt.Printf("config %s\nmanifest %s\n", m.Config.Digest, top.Digest)
	index, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []descriptor{top}})
	if err := os.WriteFile(filepath.Join(layout, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(layout, "index.json"), index, 0o644)
}

// chainID names a stack of layers: the first layer's diff_id, then
// sha256("<chain below> <diff_id>") for each layer on top.
func chainID(below, diffID string) string {
	if below == "" {
		return diffID
	}
	return fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(below+" "+diffID)))
}

func tarDir(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		link, _ := os.Readlink(p)
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name, _ = filepath.Rel(dir, p)
		if err := tw.WriteHeader(hdr); err != nil || !info.Mode().IsRegular() {
			return err
		}
		data, err := os.ReadFile(p)
		if err == nil {
			_, err = tw.Write(data)
		}
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func mount(layout, work, write string) error {
	var index struct{ Manifests []descriptor }
	var m manifest
	var cfg config
	data, err := os.ReadFile(filepath.Join(layout, "index.json"))
	if err == nil {
		err = json.Unmarshal(data, &index)
	}
	if err == nil && len(index.Manifests) > 0 {
		if data, err = getBlob(layout, index.Manifests[0].Digest); err == nil {
			err = json.Unmarshal(data, &m)
		}
	}
	if err == nil {
		if data, err = getBlob(layout, m.Config.Digest); err == nil {
			err = json.Unmarshal(data, &cfg)
		}
	}
	if err != nil {
		return err
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return fmt.Errorf("config lists %d diff_ids for %d layers", len(cfg.RootFS.DiffIDs), len(m.Layers))
	}
	var lowers []string // top first, as overlayfs wants them
	for i, l := range m.Layers {
		dir := filepath.Join(work, "layers", fmt.Sprint(i))
		if err := unpack(layout, l.Digest, cfg.RootFS.DiffIDs[i], dir); err != nil {
			return err
		}
		lowers = append([]string{dir}, lowers...)
	}
	upper, wdir, merged := filepath.Join(work, "upper"), filepath.Join(work, "work"), filepath.Join(work, "merged")
	for _, d := range []string{upper, wdir, merged} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	opts := "lowerdir=" + strings.Join(lowers, ":") + ",upperdir=" + upper + ",workdir=" + wdir
	fmt.Printf("mount -t overlay overlay -o %s %s\n", opts, merged)
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount overlay on %s: %w", merged, err)
	}
	defer func() {
		if err := unix.Unmount(merged, 0); err != nil {
			fmt.Fprintln(os.Stderr, "lesson06: umount:", err)
		}
		fmt.Println("umount", merged)
	}()
	filepath.Walk(merged, func(p string, info os.FileInfo, err error) error {
		if err == nil && p != merged {
			fmt.Println("merged", strings.TrimPrefix(p, merged))
		}
		return nil
	})
	if name, text, ok := strings.Cut(write, "="); ok {
		fmt.Println("write", name)
		return os.WriteFile(filepath.Join(merged, name), []byte(text), 0o644)
	}
	return nil
}

// unpack extracts one gzipped layer into dir, checking its diff_id, with
// whiteouts in the form overlayfs reads. Corner cut: it refuses ".." and
// absolute names but not symlink tricks; pkg/image/layer does it properly.
func unpack(layout, digest, diffID, dir string) error {
	blob, err := getBlob(layout, digest)
	if err != nil {
		return err
	}
	zr, err := gzip.NewReader(strings.NewReader(string(blob)))
	if err != nil {
		return err
	}
	h := sha256.New()
	tee := io.TeeReader(zr, h) // hash the tar as it is read: the diff_id
	tr := tar.NewReader(tee)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if strings.HasPrefix(hdr.Name, "/") || strings.Contains("/"+hdr.Name+"/", "/../") {
			return fmt.Errorf("layer %s: unsafe entry %q", digest, hdr.Name)
		}
		p := filepath.Join(dir, hdr.Name)
		base := filepath.Base(p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		switch {
		case base == ".wh..wh..opq": // hide the lower layers' content of this dir
			err = unix.Setxattr(filepath.Dir(p), "trusted.overlay.opaque", []byte("y"), 0)
		case strings.HasPrefix(base, ".wh."): // delete a lower file: char device 0/0
			err = unix.Mknod(filepath.Join(filepath.Dir(p), base[4:]), unix.S_IFCHR, 0)
		case hdr.Typeflag == tar.TypeDir:
			err = os.MkdirAll(p, os.FileMode(hdr.Mode))
		case hdr.Typeflag == tar.TypeSymlink:
			err = os.Symlink(hdr.Linkname, p)
		case hdr.Typeflag == tar.TypeReg:
			var f *os.File
			if f, err = os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(hdr.Mode)); err == nil {
				_, err = io.Copy(f, tr)
				f.Close()
			}
		}
		if err != nil {
			return fmt.Errorf("layer %s: %s: %w", digest, hdr.Name, err)
		}
	}
	io.Copy(io.Discard, tee) // the end-of-archive blocks count in the diff_id too
	if got := fmt.Sprintf("sha256:%x", h.Sum(nil)); got != diffID {
		return fmt.Errorf("layer %s: diff_id %s, config says %s", digest, got, diffID)
	}
	fmt.Printf("unpacked layer %s into %s\n", digest, dir)
	return nil
}
