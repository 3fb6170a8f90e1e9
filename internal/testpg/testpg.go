// Package testpg runs throwaway PostgreSQL clusters for tests and gives
// each test its own schema.
//
// `make test` runs the tests under cmd/pgrun, which starts one cluster for
// the whole run, exports its URL as OTPCASH_TEST_POSTGRES and removes the
// cluster afterwards, also when the tests fail. Tests get it through DSN or
// Schema, which skip (saying why) only when OTPCASH_SKIP_POSTGRES=1, or
// when no cluster was given outside CI; with CI=true a missing cluster
// fails the test, so PostgreSQL tests never skip silently in CI. A test
// that must restart the server starts a private cluster with Start.
package testpg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables.
const (
	EnvDSN  = "OTPCASH_TEST_POSTGRES" // URL of the cluster for the tests
	EnvSkip = "OTPCASH_SKIP_POSTGRES" // "1": skip every PostgreSQL test
)

// ErrNoPostgres: no PostgreSQL server binaries were found.
var ErrNoPostgres = errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found; install the postgresql package")

// startTimeout bounds initdb and a server start or restart.
const startTimeout = 60 * time.Second

// Cluster is a running throwaway cluster in a temporary directory,
// listening on 127.0.0.1 only and trusting local connections.
type Cluster struct {
	DSN  string // postgres://otpcash@127.0.0.1:PORT/postgres?sslmode=disable
	dir  string
	bin  string
	cred *syscall.Credential // the server's user when we are root
	log  io.Writer
}

// BinDir returns the directory of initdb and pg_ctl: the newest
// /usr/lib/postgresql/*/bin, else the one of initdb on the PATH.
func BinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return version(a) - version(b) })
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		return filepath.Dir(p), nil
	}
	return "", ErrNoPostgres
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Start initialises and starts a cluster, logging the server's output to
// log. As root, the server runs as the user postgres (or nobody), since
// PostgreSQL refuses to run as root.
func Start(ctx context.Context, log io.Writer) (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "otpcash-pg-")
	if err != nil {
		return nil, fmt.Errorf("testpg: %w", err)
	}
	c := &Cluster{dir: dir, bin: bin, log: log}
	if os.Geteuid() == 0 {
		if c.cred, err = serverUser(); err == nil {
			err = os.Chown(dir, int(c.cred.Uid), int(c.cred.Gid))
		}
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("testpg: %w", err)
		}
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("testpg: %w", err)
	}
	c.DSN = fmt.Sprintf("postgres://otpcash@127.0.0.1:%d/postgres?sslmode=disable", port)
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	err = c.run(ctx, "initdb", "-D", c.data(), "-U", "otpcash", "--auth=trust", "-E", "UTF8", "--no-sync")
	if err == nil {
		opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -c unix_socket_directories=%s -c max_connections=300", port, dir)
		err = c.run(ctx, "pg_ctl", "-D", c.data(), "-l", c.serverLog(), "-o", opts, "-w", "-t", "60", "start")
	}
	if err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

// serverLog is the server's own log: its output must not go to pg_ctl's,
// which the server would hold open after pg_ctl exits.
func (c *Cluster) serverLog() string { return filepath.Join(c.dir, "server.log") }

// Restart stops the server (fast: open connections are cut) and starts it
// again on the same port.
func (c *Cluster) Restart(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	return c.run(ctx, "pg_ctl", "-D", c.data(), "-l", c.serverLog(), "-m", "fast", "-w", "-t", "60", "restart")
}

// Stop stops the server at once and removes the cluster's directory.
func (c *Cluster) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var err error
	if _, serr := os.Stat(filepath.Join(c.data(), "postmaster.pid")); serr == nil {
		err = c.run(ctx, "pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "stop")
	}
	return errors.Join(err, os.RemoveAll(c.dir))
}

func (c *Cluster) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	cmd.Stdout, cmd.Stderr = c.log, c.log
	cmd.WaitDelay = 5 * time.Second // never hang on an output pipe a server inherited
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
		cmd.Env = append(os.Environ(), "HOME="+c.dir)
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("testpg: %s: %w", name, err)
	}
	return nil
}

// serverUser returns the user to run the server as when we are root.
func serverUser() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 == nil && err2 == nil {
			return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
		}
	}
	return nil, errors.New("running as root, and no user postgres or nobody to run the server as")
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// DSN returns the URL of the tests' cluster. It skips t when
// OTPCASH_SKIP_POSTGRES=1, fails it when CI=true and no cluster is given,
// and skips it otherwise when none is given, saying so each time.
func DSN(t testing.TB) string {
	t.Helper()
	if os.Getenv(EnvSkip) == "1" {
		t.Skipf("PostgreSQL test skipped: %s=1", EnvSkip)
	}
	dsn := os.Getenv(EnvDSN)
	switch {
	case dsn != "":
		return dsn
	case os.Getenv("CI") == "true":
		t.Fatalf("CI=true and %s is not set: run the tests with `make test`, which starts a cluster, or set %s=1 to skip them", EnvDSN, EnvSkip)
	default:
		t.Skipf("PostgreSQL test skipped: %s is not set (`make test` starts a throwaway cluster)", EnvDSN)
	}
	return ""
}

// Schema creates a fresh, empty schema in the tests' cluster (see DSN),
// dropped when the test ends, and returns a DSN whose search_path is it.
func Schema(t testing.TB) string {
	t.Helper()
	return SchemaIn(t, DSN(t))
}

// SchemaIn is Schema in the cluster at dsn.
func SchemaIn(t testing.TB, dsn string) string {
	t.Helper()
	ctx := context.Background()
	buf := make([]byte, 6)
	rand.Read(buf)
	name := "t_" + hex.EncodeToString(buf)
	exec := func(sql string) error {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec("CREATE SCHEMA " + name); err != nil {
		t.Fatalf("testpg: create schema: %v", err)
	}
	t.Cleanup(func() {
		if err := exec("DROP SCHEMA " + name + " CASCADE"); err != nil {
			t.Errorf("testpg: drop schema %s: %v", name, err)
		}
	})
	return WithSearchPath(dsn, name)
}

// WithSearchPath returns dsn (a URL or key=value string) with its
// search_path set to schema.
func WithSearchPath(dsn, schema string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return strings.TrimSpace(dsn) + " search_path=" + schema
}
