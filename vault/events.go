package vault

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Event is one entry of the wallet's history.
type Event struct {
	Time     time.Time `cbor:"1,keyasint"`
	Kind     string    `cbor:"2,keyasint"`
	Amount   int64     `cbor:"3,keyasint"`
	Currency string    `cbor:"4,keyasint"`
	Peer     string    `cbor:"5,keyasint"`
	Detail   string    `cbor:"6,keyasint"`
}

// AddEvent appends e to the history; a zero Time is set to now.
func (v *Vault) AddEvent(ctx context.Context, e Event) error {
	if err := v.update(ctx, func(t *tx) error { return t.addEvent(e) }); err != nil {
		return fmt.Errorf("add event: %w", err)
	}
	return nil
}

// addEvent appends e to the history; a zero Time is set to now.
func (t *tx) addEvent(e Event) error {
	if e.Time.IsZero() {
		e.Time = t.now
	}
	// Events are numbered, not keyed by a MAC, so that the row keys keep
	// them in order.
	var last []byte
	var seq uint64
	err := t.stmt(lastRecord).QueryRowContext(t.ctx, kindEvent).Scan(&last)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return err
	case len(last) != 8:
		return errors.New("event record has a corrupt number")
	default:
		seq = binary.BigEndian.Uint64(last)
	}
	return t.put(kindEvent, binary.BigEndian.AppendUint64(nil, seq+1), "", nil, e)
}

// Events returns the history, oldest first.
func (v *Vault) Events(ctx context.Context) ([]Event, error) {
	var events []Event
	err := v.update(ctx, func(t *tx) error {
		rows, err := list[Event](t, kindEvent, allRecords, nil)
		for _, r := range rows {
			events = append(events, r.val)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	return events, nil
}
