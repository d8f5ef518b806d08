package image

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"unicode"

	"github.com/google/go-containerregistry/pkg/name"
)

// DefaultRegistry is the registry of a reference that names none, as in docker.
const DefaultRegistry = "docker.io"

// A Reference names an image in a registry: registry host, repository path,
// and either a tag or a digest. It is always fully normalized:
// "busybox" is docker.io/library/busybox:latest.
type Reference struct {
	Registry   string // "docker.io", "127.0.0.1:5000"
	Repository string // "library/busybox"
	Tag        string // "latest"; "" when the reference is by digest only
	Digest     string // "sha256:..."; "" unless the reference carries one

	ref name.Reference // the go-containerregistry form, for the registry client
}

// ParseReference normalizes s the way docker does. A reference without a
// tag or digest gets ":latest"; a reference without a registry gets
// docker.io, and a single-component Docker Hub repository gets "library/".
// Upper-case repositories, empty strings and stray colons are errors.
func ParseReference(s string) (Reference, error) {
	return parseReference(s, nil)
}

// parseReference is ParseReference for a store that marks some registries
// insecure (plain HTTP), as docker's --insecure-registry does.
func parseReference(s string, insecure []string) (Reference, error) {
	if strings.TrimSpace(s) == "" {
		return Reference{}, fmt.Errorf("invalid reference %q: empty", s)
	}
	// No reference holds a space or a control character; refused here, a
	// newline would reach the user unquoted in go-containerregistry's error.
	if i := strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }); i >= 0 {
		return Reference{}, fmt.Errorf("invalid reference %q: %q is not allowed in a reference", s, []rune(s[i:])[0])
	}
	if err := checkRepository(s); err != nil {
		return Reference{}, fmt.Errorf("invalid reference %q: %w", s, err)
	}
	var opts []name.Option
	if isInsecure(registryOf(s), insecure) {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(addDefaultTag(s), opts...)
	if err != nil {
		return Reference{}, fmt.Errorf("invalid reference %q: %w", s, err)
	}
	if err := checkComponents(ref.Context().RepositoryStr()); err != nil {
		return Reference{}, fmt.Errorf("invalid reference %q: %w", s, err)
	}
	r := Reference{
		Registry:   displayRegistry(ref.Context().RegistryStr()),
		Repository: ref.Context().RepositoryStr(),
		ref:        ref,
	}
	switch v := ref.(type) {
	case name.Tag:
		r.Tag = v.TagStr()
	case name.Digest:
		r.Digest = v.DigestStr()
		// "name:tag@sha256:..." keeps its tag for display; the digest wins.
		if before, _, ok := strings.Cut(s, "@"); ok {
			if t, err := name.NewTag(before, name.WeakValidation); err == nil && strings.Contains(lastComponent(before), ":") {
				r.Tag = t.TagStr()
			}
		}
	}
	return r, nil
}

// component is the distribution grammar of one repository path component;
// go-containerregistry accepts more (a leading "-"), docker does not.
var component = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)

func checkComponents(repo string) error {
	for _, c := range strings.Split(repo, "/") {
		if !component.MatchString(c) {
			return fmt.Errorf("repository component %q must be lower-case letters and digits separated by '.', '_' or '-'", c)
		}
	}
	return nil
}

// checkRepository checks the repository part of an unparsed reference, so
// that the error says what is wrong rather than "could not parse".
func checkRepository(s string) error {
	repo, _, _ := strings.Cut(s, "@")
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	if reg := registryOf(repo); reg != "" {
		repo = strings.TrimPrefix(repo, reg+"/")
	}
	if strings.ToLower(repo) != repo {
		return fmt.Errorf("repository name %q must be lowercase", repo)
	}
	return checkComponents(repo)
}

// addDefaultTag appends ":latest" when s has neither tag nor digest.
// We add it ourselves so that "a/b:" (an empty tag) stays an error.
func addDefaultTag(s string) string {
	if strings.Contains(s, "@") || strings.Contains(lastComponent(s), ":") {
		return s
	}
	return s + ":latest"
}

func lastComponent(s string) string {
	if i := strings.LastIndex(s, "/"); i >= 0 {
		return s[i+1:]
	}
	return s
}

// registryOf returns the registry part of an unparsed reference, or "" when
// it names none (docker's rule: the first component is a host when it has a
// dot or a colon or is "localhost").
func registryOf(s string) string {
	first, _, ok := strings.Cut(s, "/")
	if !ok {
		return ""
	}
	if strings.ContainsAny(first, ".:") || first == "localhost" {
		return first
	}
	return ""
}

// isInsecure reports whether a registry is reached over plain HTTP: the
// loopback addresses (127.0.0.0/8, ::1, localhost) by default, as docker
// does, and those named in the list.
func isInsecure(registry string, list []string) bool {
	if registry == "" {
		return false
	}
	for _, r := range list {
		if r == registry {
			return true
		}
	}
	host := registry
	if h, _, err := net.SplitHostPort(registry); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func displayRegistry(r string) string {
	if r == name.DefaultRegistry { // "index.docker.io"
		return DefaultRegistry
	}
	return r
}

// Name is the repository with its registry: "docker.io/library/busybox".
func (r Reference) Name() string { return r.Registry + "/" + r.Repository }

// String is the full normalized reference.
func (r Reference) String() string { return r.Name() + r.suffix() }

// FamiliarString is the reference as docker prints it in `rmi` and errors:
// Familiar with the tag and digest ("student/app:v1", "busybox:latest").
func (r Reference) FamiliarString() string { return r.Familiar() + r.suffix() }

// suffix is ":tag", "@digest", both or neither.
func (r Reference) suffix() string {
	var s string
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// Familiar is the short form docker prints in `images`: "busybox" for
// docker.io/library/busybox, the full name elsewhere. The short form must
// name the same image again: "library/" goes only before a single component
// (docker.io/library/a/b stays library/a/b), and docker.io stays when the
// first component would be read as a registry (docker.io/r.o/l).
func (r Reference) Familiar() string {
	if r.Registry != DefaultRegistry {
		return r.Name()
	}
	short := r.Repository
	if rest, ok := strings.CutPrefix(short, "library/"); ok && !strings.Contains(rest, "/") {
		short = rest
	}
	if registryOf(short) != "" {
		return r.Name()
	}
	return short
}
