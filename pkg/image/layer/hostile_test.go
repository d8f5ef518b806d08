package layer

import (
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/minictr/minictr/internal/imagetest"
)

// hostileDir holds the fixtures of internal/hostilegen.
var hostileDir = filepath.Join("..", "..", "..", "testdata", "hostile")

// TestHostileFixtures unpacks every hostile fixture, with Unpack and with
// Apply, into target inside a sentinel directory: each must fail naming its
// entry, and nothing may appear beside target or in /tmp.
func TestHostileFixtures(t *testing.T) {
	fixtures, err := imagetest.HostileFixtures(hostileDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range fixtures {
		for mode, fn := range map[string]func(io.Reader, string, Options) (Stats, error){"unpack": Unpack, "apply": Apply} {
			t.Run(mode+"/"+h.File, func(t *testing.T) {
				sentinel := t.TempDir()
				target := filepath.Join(sentinel, "target")
				if err := os.Mkdir(target, 0o755); err != nil {
					t.Fatal(err)
				}
				r := openFixture(t, h.File)
				_, err := fn(r, target, Options{MaxSize: 1 << 20})
				var ee *EntryError
				if !errors.As(err, &ee) || ee.Name != h.Entry || !strings.Contains(err.Error(), h.Want) {
					t.Fatalf("err = %v\nwant an error on entry %q containing %q", err, h.Entry, h.Want)
				}
				if got := names(t, sentinel); !slices.Equal(got, []string{"target"}) {
					t.Errorf("the sentinel directory holds %v, want only [target]", got)
				}
				for _, p := range escapes(sentinel) {
					if _, err := os.Lstat(p); err == nil {
						t.Errorf("%s exists: the layer escaped", p)
					}
				}
			})
		}
	}
}

// escapes are the paths outside the target that the fixtures aim at: none
// may exist after an unpack.
func escapes(sentinel string) []string {
	return []string{"/tmp/minictr-hostile-absolute", "/tmp/minictr-hostile-symlink", filepath.Join(filepath.Dir(sentinel), "escape")}
}

// TestContainedFixtures unpacks the layers real tools write (a root entry
// "/", absolute and "./" names), with Unpack and with Apply: each must
// unpack, put its files below target, and nothing beside it or in /tmp.
func TestContainedFixtures(t *testing.T) {
	fixtures, err := imagetest.ContainedFixtures(hostileDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range fixtures {
		for mode, fn := range map[string]func(io.Reader, string, Options) (Stats, error){"unpack": Unpack, "apply": Apply} {
			t.Run(mode+"/"+c.File, func(t *testing.T) {
				sentinel := t.TempDir()
				target := filepath.Join(sentinel, "target")
				if err := os.Mkdir(target, 0o755); err != nil {
					t.Fatal(err)
				}
				if _, err := fn(openFixture(t, c.File), target, Options{MaxSize: 1 << 20}); err != nil {
					t.Fatalf("%s refused: %v", c.File, err)
				}
				for _, p := range c.Lands {
					if _, err := os.Lstat(filepath.Join(target, p)); err != nil {
						t.Errorf("%s did not land below the target: %v", p, err)
					}
				}
				if got := names(t, sentinel); !slices.Equal(got, []string{"target"}) {
					t.Errorf("the sentinel directory holds %v, want only [target]", got)
				}
				for _, p := range escapes(sentinel) {
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
