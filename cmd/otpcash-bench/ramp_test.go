package main

import (
	"bufio"
	"encoding/json"
	"io"
	"strings"
	"testing"
)

// scripted is a ramp peer process played by the test: it answers each
// request with answer's reply, over pipes, as the real one does over its
// standard input and output.
func scripted(t *testing.T, name string, answer func(peerRequest) peerReply) *peer {
	t.Helper()
	reqR, reqW := io.Pipe()
	repR, repW := io.Pipe()
	go func() {
		defer repW.Close()
		in := bufio.NewScanner(reqR)
		for in.Scan() {
			var r peerRequest
			if err := json.Unmarshal(in.Bytes(), &r); err != nil {
				repW.CloseWithError(err)
				return
			}
			b, _ := json.Marshal(answer(r))
			if _, err := repW.Write(append(b, '\n')); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { reqW.Close() })
	return &peer{name: name, in: reqW, out: bufio.NewScanner(repR)}
}

// TestRampOnceChecksBothSides: a run counts only if the payer sent and the
// payee received every coin, and the payer still holds the coins it holds
// besides (--holding), so that the ramp never reports a run that measured
// something else.
func TestRampOnceChecksBothSides(t *testing.T) {
	const n, holding = 3, 4
	tests := []struct {
		name            string
		sent, got, held int
		bare            bool
		wantErr         string
	}{
		{"every coin, holding kept", n, n, holding, false, ""},
		{"a holding coin paid", n, n, holding - 1, false, "the payer holds 3 coins after it, not the 4"},
		{"transport only, nothing held", n, n, 0, true, ""},
		{"a coin not sent", n - 1, n, holding, false, "payer sent 2, payee received 3"},
		{"a coin not received", n, n - 1, holding, false, "payer sent 3, payee received 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payer := scripted(t, "payer", func(r peerRequest) peerReply {
				if r.Op == "pay" {
					return peerReply{Coins: tt.sent, Held: tt.held}
				}
				return peerReply{}
			})
			payee := scripted(t, "payee", func(r peerRequest) peerReply {
				if r.Op == "receive" {
					return peerReply{Coins: tt.got}
				}
				return peerReply{}
			})
			run, err := rampOnce(payer, payee, "addr", n, tt.bare, holding)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("rampOnce: %v", err)
			case tt.wantErr == "" && run.coins != n:
				t.Fatalf("rampOnce counted %d coins, want %d", run.coins, n)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("rampOnce: %v, want an error saying %q", err, tt.wantErr)
			}
		})
	}
}
