package vault

import (
	"bytes"
	"crypto/rand"
	"errors"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

func TestProtector(t *testing.T) {
	key := make([]byte, dataKeySize)
	rand.Read(key)
	params, err := cheap.params()
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := (&argon2Protector{pin: testPIN, params: params}).wrap(key)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		pin    string
		change func(b []byte) []byte
		want   error  // wrapped by the error
		msg    string // in the error text, when want is nil
	}{
		{"right PIN", string(testPIN), nil, nil, ""},
		{"wrong PIN", "correct horsf", nil, ErrWrongPIN, ""},
		{"empty PIN", "", nil, ErrWrongPIN, ""},
		{"salt changed", string(testPIN), func(b []byte) []byte { b[12] ^= 1; return b }, ErrWrongPIN, ""},
		{"time changed", string(testPIN), func(b []byte) []byte { b[4] = 2; return b }, ErrWrongPIN, ""},
		{"key changed", string(testPIN), func(b []byte) []byte { b[len(b)-20] ^= 1; return b }, ErrWrongPIN, ""},
		{"memory too large", string(testPIN), func(b []byte) []byte { b[5] = 0xff; return b }, nil, "memory"},
		{"no threads", string(testPIN), func(b []byte) []byte { b[9] = 0; return b }, nil, "thread"},
		{"unknown version", string(testPIN), func(b []byte) []byte { b[0] = 2; return b }, nil, "version 2"},
		{"truncated", string(testPIN), func(b []byte) []byte { return b[:len(b)-1] }, nil, "bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := bytes.Clone(wrapped)
			if tt.change != nil {
				b = tt.change(b)
			}
			p, err := protectorFor(protectorArgon2id, []byte(tt.pin), "")
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.unwrap(b)
			switch {
			case tt.want == nil && tt.msg == "":
				if err != nil || !bytes.Equal(got, key) {
					t.Fatalf("unwrap = %x, %v; want the data key", got, err)
				}
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("unwrap error %v, want %v", err, tt.want)
			case tt.msg != "" && (err == nil || errors.Is(err, ErrWrongPIN) || !strings.Contains(err.Error(), tt.msg)):
				t.Fatalf("unwrap error %v, want one about %q", err, tt.msg)
			}
		})
	}
	if _, err := protectorFor("tpm3", testPIN, ""); err == nil {
		t.Fatal("an unknown protector was accepted")
	}
}

// FuzzParseWrapped feeds the parser of the one plaintext structure read
// before anything is authenticated.
func FuzzParseWrapped(f *testing.F) {
	params, err := cheap.params()
	if err != nil {
		f.Fatal(err)
	}
	wrapped, err := (&argon2Protector{pin: testPIN, params: params}).wrap(make([]byte, dataKeySize))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(wrapped)
	f.Add([]byte{})
	f.Add(make([]byte, wrappedSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := parseWrapped(b)
		if err != nil {
			return
		}
		if err := w.params.check(); err != nil {
			t.Fatalf("accepted parameters %+v: %v", w.params, err)
		}
		if len(w.salt) != saltSize || len(w.nonce) != chacha20poly1305.NonceSizeX || len(w.sealed) != dataKeySize+chacha20poly1305.Overhead {
			t.Fatalf("accepted sizes %d, %d, %d", len(w.salt), len(w.nonce), len(w.sealed))
		}
	})
}

// TestPINHashingLeavesNoHeapGoal checks that Argon2id's memory does not
// set the collector's next goal: it is live when the collection its
// allocation starts runs, and without a collection after the derivation
// the goal stays at twice its size, so the wallet's next hundreds of
// megabytes of allocations each touch fresh memory. Not parallel: another
// test's allocations would move the goal.
func TestPINHashingLeavesNoHeapGoal(t *testing.T) {
	const memory = defaultMemoryKiB << 10
	runtime.GC() // a small goal, which the derivation's memory overruns
	a := &argon2Protector{pin: []byte("246813")}
	a.kek(argon2Params{Time: 1, MemoryKiB: defaultMemoryKiB, Threads: 1}, make([]byte, 16))
	m := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(m)
	goal, live := m[0].Value.Uint64(), m[1].Value.Uint64()
	if goal >= memory {
		t.Errorf("after the derivation the heap goal is %d MiB (live %d MiB): the %d MiB of Argon2id set it", goal>>20, live>>20, memory>>20)
	}
}
