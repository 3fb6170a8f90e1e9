// Package cli holds what the otpcash and otpcash-bench commands share: how
// a process starts (its collector pace and signals), how a --db value
// opens a bank's storage, and a bank embedded on loopback for the demo and
// the benchmarks. It lets the benchmarks live in their own binary, so the
// server and wallet binary links no plotting code.
package cli
