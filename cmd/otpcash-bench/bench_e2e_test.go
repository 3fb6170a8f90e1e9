package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/otpcash/otpcash/internal/testtpm"
)

// The tests run the real binary: the ramp re-executes it as its two
// wallet processes.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "otpcash-bench-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "otpcash-bench")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		panic("build otpcash-bench: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// TestBenchRamp runs a small ramp through the binary, with its two wallet
// processes and its bank, for each kind of payee, and checks what it
// wrote: one row per amount, every coin accounted for, nothing free.
func TestBenchRamp(t *testing.T) {
	perCoin := map[string]float64{} // bytes on the wire per coin, 3 coins, full protocol
	for _, payee := range []string{"merchant", "anonymous"} {
		t.Run(payee, func(t *testing.T) {
			out := t.TempDir()
			stdout, errOut, err := run(t, "ramp", "--reps", "2", "--amounts", "1,3", "--payee", payee, "--out", out)
			if err != nil {
				t.Fatalf("otpcash-bench ramp: %v\n%s%s", err, stdout, errOut)
			}
			want := map[string]string{"merchant": "certified in the clear", "anonymous": "blind-certified"}[payee]
			if !strings.Contains(stdout, want) {
				t.Errorf("report does not say the keys are %s:\n%s", want, stdout)
			}
			runs := readCSV(t, filepath.Join(out, "ramp-runs.csv"))
			// header, then 2 amounts x 2 reps x (full, transport)
			if len(runs) != 1+8 {
				t.Fatalf("ramp-runs.csv has %d lines, want 9:\n%v", len(runs), runs)
			}
			wantHeader := []string{"coins", "repetition", "mode", "wall_s", "payer_cpu_s", "payee_cpu_s", "wire_bytes",
				"payer_sys_s", "payee_sys_s", "payer_page_faults", "payee_page_faults"}
			if !slices.Equal(runs[0], wantHeader) {
				t.Errorf("ramp-runs.csv header %v, want %v", runs[0], wantHeader)
			}
			for _, r := range runs[1:] {
				if cpu, sys := seconds(t, r[4])+seconds(t, r[5]), seconds(t, r[7])+seconds(t, r[8]); r[2] == "full" && (cpu <= 0 || sys > cpu) {
					t.Errorf("run %v: CPU time %g s of which system %g s", r, cpu, sys)
				}
				if r[3] == "" || strings.HasPrefix(r[3], "0.000000") || strings.HasPrefix(r[6], "0") {
					t.Errorf("run %v: no wall time or no bytes on the wire", r)
				}
			}
			for _, r := range runs[1:] {
				if r[0] == "3" && r[2] == "full" {
					b, err := strconv.ParseFloat(r[6], 64)
					if err != nil {
						t.Fatal(err)
					}
					perCoin[payee] += b / 3 / 2
				}
			}
			for _, name := range []string{"ramp.csv", "ramp.svg", "ramp.png"} {
				if st, err := os.Stat(filepath.Join(out, name)); err != nil || st.Size() == 0 {
					t.Errorf("%s not written: %v", name, err)
				}
			}
		})
	}
	// A blind certificate carries a randomizer and an RSA-2048 signature
	// (288 bytes) where an Ed25519 one carries 64; it crosses the link
	// once, as bytes, when offered: the sealed coin names it by its place
	// (session protocol version 4).
	if d := perCoin["anonymous"] - perCoin["merchant"]; d < 200 || d > 260 {
		t.Errorf("anonymous keys cost %.0f bytes per coin more than a merchant's, want about 224", d)
	}
}

// TestBenchRampHolding runs a small ramp from a payer that holds other
// coins throughout; the ramp checks after each run that it still does.
func TestBenchRampHolding(t *testing.T) {
	stdout, errOut, err := run(t, "ramp", "--reps", "2", "--amounts", "1,3", "--holding", "4", "--transport-only=false", "--out", t.TempDir())
	if err != nil {
		t.Fatalf("otpcash-bench ramp --holding 4: %v\n%s%s", err, stdout, errOut)
	}
	if !strings.Contains(stdout, "holds 4 other coins") {
		t.Errorf("the ramp does not say the payer holds 4 other coins:\n%s", stdout)
	}
}

func TestBenchRampRefusesUnknownPayee(t *testing.T) {
	_, errOut, err := run(t, "ramp", "--payee", "bank", "--out", t.TempDir())
	if err == nil || !strings.Contains(errOut, "--payee must be merchant or anonymous") {
		t.Fatalf("otpcash-bench ramp --payee bank: err %v, stderr %q", err, errOut)
	}
}

// TestBenchRampTPM runs a small ramp with TPM vaults, each wallet on a
// swtpm the ramp starts: every coin of every run arrives.
func TestBenchRampTPM(t *testing.T) {
	testtpm.Require(t)
	out := t.TempDir()
	stdout, errOut, err := run(t, "ramp", "--reps", "2", "--amounts", "1,3", "--vault", "tpm", "--transport-only=false", "--out", out)
	if err != nil {
		t.Fatalf("otpcash-bench ramp --vault tpm: %v\n%s%s", err, stdout, errOut)
	}
	if !strings.Contains(stdout, "tpm vaults") {
		t.Errorf("the ramp does not say its vaults are TPM ones:\n%s", stdout)
	}
	runs := readCSV(t, filepath.Join(out, "ramp-runs.csv"))
	if len(runs) != 1+2*2 { // header, then 2 amounts x 2 reps, full only
		t.Fatalf("ramp-runs.csv has %d lines, want 5:\n%v", len(runs), runs)
	}
	if _, _, err := run(t, "ramp", "--vault", "hsm", "--out", out); err == nil {
		t.Error("ramp --vault hsm was accepted")
	}
}

// seconds parses a CSV field of seconds.
func seconds(t *testing.T, field string) float64 {
	t.Helper()
	x, err := strconv.ParseFloat(field, 64)
	if err != nil {
		t.Fatalf("%q is not a number of seconds: %v", field, err)
	}
	return x
}

// readCSV returns the records of the CSV file at path.
func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	records, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return records
}
