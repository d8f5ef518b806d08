// Command labregistry is the lab VM's image registry: go-containerregistry's
// registry (the one the tests use, pkg/image/imagetest) on 127.0.0.1:5000,
// plain HTTP, blobs in memory, seeded at start with images saved by
// `minictr save`. scripts/vm.sh builds it static and the lab's init starts it
// in the background; lesson 07 talks to it with curl and minictr.
//
// Usage: labregistry [-addr HOST:PORT] [-ready FILE] [REPO:TAG=ARCHIVE.tar ...]
//
// With -ready it creates FILE once every seed is in, so that the lab's init
// can wait for the images before it runs a command.
//
// What a push leaves lives in memory only: a reboot of the lab forgets it.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5000", "address to listen on (plain HTTP)")
	ready := flag.String("ready", "", "file to create once the seeds are pushed")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: labregistry [-addr HOST:PORT] [-ready FILE] [REPO:TAG=ARCHIVE.tar ...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(*addr, *ready, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "labregistry:", err)
		os.Exit(1)
	}
}

// run listens first, so that a client that starts right after the lab's
// init sees a registry (an empty one for a moment) rather than a refused
// connection, then pushes the seeds to itself and serves until killed.
func run(addr, ready string, seeds []string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	for _, seed := range seeds {
		if err := push(ln.Addr().String(), seed); err != nil {
			return err
		}
	}
	if ready != "" {
		if err := os.WriteFile(ready, nil, 0o644); err != nil {
			return err
		}
	}
	return <-served
}

// push loads REPO:TAG=ARCHIVE (docker save format, as `minictr save`
// writes it; its compressed layers are sent as they are) and pushes it to
// the registry at host.
func push(host, seed string) error {
	ref, archive, ok := strings.Cut(seed, "=")
	if !ok {
		return fmt.Errorf("seed %q: want REPO:TAG=ARCHIVE.tar", seed)
	}
	tag, err := name.NewTag(host+"/"+ref, name.Insecure)
	if err != nil {
		return fmt.Errorf("seed %q: %w", seed, err)
	}
	img, err := tarball.ImageFromPath(archive, nil)
	if err != nil {
		return fmt.Errorf("seed %q: %w", seed, err)
	}
	if err := remote.Write(tag, img); err != nil {
		return fmt.Errorf("pushing %s: %w", tag, err)
	}
	return nil
}
