package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"

	"github.com/otpcash/otpcash/bank"
	"github.com/otpcash/otpcash/bank/storage/sqlite"
)

// EmbeddedBank is a bank on an SQLite file, served on a loopback port, for
// the demo and the benchmarks: everything on one machine, nothing to set up.
type EmbeddedBank struct {
	*bank.Bank
	URL    string
	st     *sqlite.Store
	stop   context.CancelFunc
	served chan error

	closeOnce sync.Once
	closeErr  error
}

// StartEmbeddedBank opens dir/bank.db and serves the bank on 127.0.0.1.
// Logs are discarded unless cfg has a logger.
func StartEmbeddedBank(ctx context.Context, dir string, cfg bank.Config) (*EmbeddedBank, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "bank.db"))
	if err != nil {
		return nil, err
	}
	b, err := bank.New(ctx, st, cfg)
	if err != nil {
		st.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		st.Close()
		return nil, err
	}
	ctx, stop := context.WithCancel(ctx)
	e := &EmbeddedBank{Bank: b, URL: "http://" + ln.Addr().String(), st: st, stop: stop, served: make(chan error, 1)}
	go func() { e.served <- bank.Serve(ctx, ln, b.Handler(), cfg.Logger) }()
	return e, nil
}

// Close shuts the server down, waits for it, and closes the database. It
// may be called more than once (deferred and on the normal path).
func (e *EmbeddedBank) Close() error {
	e.closeOnce.Do(func() {
		e.stop()
		err := <-e.served
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		if cerr := e.st.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close bank database: %w", cerr)
		}
		e.closeErr = err
	})
	return e.closeErr
}
