package layer

import (
	"bufio"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// hostileDir holds the fixtures of internal/hostilegen.
var hostileDir = filepath.Join("..", "..", "..", "testdata", "hostile")

type hostile struct{ file, entry, want string }

// hostileFixtures reads the table of testdata/hostile/README.md.
func hostileFixtures(t *testing.T) []hostile {
	t.Helper()
	f, err := os.Open(filepath.Join(hostileDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []hostile
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cells := strings.Split(sc.Text(), " | ")
		if len(cells) != 4 || !strings.HasPrefix(cells[0], "| `") {
			continue
		}
		unquote := func(s string) string { return strings.Trim(s, "`| ") }
		out = append(out, hostile{unquote(cells[0]), unquote(cells[2]), unquote(cells[3])})
	}
	if len(out) < 20 {
		t.Fatalf("read only %d fixtures from the README table", len(out))
	}
	return out
}

// TestHostileFixtures unpacks every hostile fixture, with Unpack and with
// Apply, into target inside a sentinel directory: each must fail naming its
// entry, and nothing may appear beside target or in /tmp.
func TestHostileFixtures(t *testing.T) {
	for _, h := range hostileFixtures(t) {
		for mode, fn := range map[string]func(io.Reader, string, Options) (Stats, error){"unpack": Unpack, "apply": Apply} {
			t.Run(mode+"/"+h.file, func(t *testing.T) {
				sentinel := t.TempDir()
				target := filepath.Join(sentinel, "target")
				if err := os.Mkdir(target, 0o755); err != nil {
					t.Fatal(err)
				}
				r := openFixture(t, h.file)
				_, err := fn(r, target, Options{MaxSize: 1 << 20})
				var ee *EntryError
				if !errors.As(err, &ee) || ee.Name != h.entry || !strings.Contains(err.Error(), h.want) {
					t.Fatalf("err = %v\nwant an error on entry %q containing %q", err, h.entry, h.want)
				}
				if got := names(t, sentinel); !slices.Equal(got, []string{"target"}) {
					t.Errorf("the sentinel directory holds %v, want only [target]", got)
				}
				for _, p := range []string{"/tmp/minictr-hostile-absolute", "/tmp/minictr-hostile-symlink", filepath.Join(filepath.Dir(sentinel), "escape")} {
					if _, err := os.Lstat(p); err == nil {
						t.Errorf("%s exists: the layer escaped", p)
					}
				}
			})
		}
	}
}

func openFixture(t *testing.T, name string) io.Reader {
	t.Helper()
	f, err := os.Open(filepath.Join(hostileDir, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if !strings.HasSuffix(name, ".gz") {
		return f
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	return zr
}
