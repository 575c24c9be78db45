// Command auditrelay-test-ferretdb serves a fresh FerretDB 1.24 (embedded,
// SQLite backend) on a loopback port for auditrelay's tests, demo and
// benchmarks. The `go install` build of FerretDB's own command panics at
// start (its module ships an empty version file), so we embed the library.
//
// Usage: auditrelay-test-ferretdb -listen 127.0.0.1:0 -dir DIR
// It prints "listening on HOST:PORT" once the port is bound and stops on
// SIGTERM or SIGINT.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "host:port to listen on (port 0: pick a free one)")
	dir := flag.String("dir", "", "directory for the SQLite files (required)")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "auditrelay-test-ferretdb: -dir is required")
		os.Exit(64)
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		log.Fatal(err)
	}
	addr := *listen
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		log.Fatal(err)
	}
	if port == "0" {
		// Pick a free port: bind, read it back, release.
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			log.Fatal(err)
		}
		addr = l.Addr().String()
		l.Close()
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Handler:   "sqlite",
		SQLiteURL: "file:" + *dir + "/",
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	done := make(chan struct{})
	go func() {
		f.Run(ctx)
		close(done)
	}()
	// Report readiness only once the port accepts connections.
	for i := 0; i < 200; i++ {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			fmt.Printf("listening on %s\n", addr)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	<-done
}
