package layer

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// benchLayer is a layer shaped like a distribution's: 200 directories two
// deep, 25 files of 4 KiB and a symlink in each (5,000 files, 20 MiB), in
// the order tar writes them (a directory, then its entries).
func benchLayer(b *testing.B) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := bytes.Repeat([]byte("x"), 4096)
	write := func(h *tar.Header, data []byte) {
		h.ModTime, h.Format = testTime, tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			b.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 20 {
		top := fmt.Sprintf("usr/lib%02d/", i)
		write(&tar.Header{Name: top, Typeflag: tar.TypeDir, Mode: 0o755}, nil)
		for j := range 10 {
			d := fmt.Sprintf("%spkg%02d/", top, j)
			write(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755}, nil)
			for k := range 25 {
				write(&tar.Header{Name: fmt.Sprintf("%sfile%02d", d, k), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}, body)
			}
			write(&tar.Header{Name: d + "link", Typeflag: tar.TypeSymlink, Linkname: "file00", Mode: 0o777}, nil)
		}
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkUnpack measures the extraction itself (the pull benchmarks'
// unpack step): go test -bench Unpack -benchtime 20x ./pkg/image/layer
func BenchmarkUnpack(b *testing.B) {
	layer := benchLayer(b)
	base := b.TempDir()
	b.SetBytes(int64(len(layer)))
	before := cpuTime(b)
	n := 0
	for i := 0; b.Loop(); i++ {
		n++
		dir := filepath.Join(base, fmt.Sprint(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		if _, err := Unpack(bytes.NewReader(layer), dir, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	// CPU time is steadier than wall time on a busy machine.
	b.ReportMetric(float64(cpuTime(b)-before)/float64(n), "cpu-ns/op")
}

// cpuTime is this process's user and system time so far, in nanoseconds.
func cpuTime(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
