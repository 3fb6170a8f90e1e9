package bank

import (
	_ "embed"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/otp"
)

// ErrPrograms is wrapped by every error of a coin program configuration.
var ErrPrograms = errors.New("invalid coin programs")

//go:embed programs.toml
var defaultPrograms []byte

// maxProgramName bounds a program's name, which every coin carries.
const maxProgramName = 32

// ProgramDef is one coin program of the bank's configuration.
type ProgramDef struct {
	otp.Program
	Description string
	// Expires, when set, is the latest time coins of the program are
	// payable; zero means the bank's coin lifetime alone decides.
	Expires time.Time
}

// Programs is a loaded, checked coin program configuration. It is
// immutable.
type Programs struct {
	byName map[string]ProgramDef
}

// programFile is the TOML format: see programs.toml and docs/PROGRAMS.md.
type programFile struct {
	Programs map[string]programSpec `toml:"programs"`
}

type programSpec struct {
	Description string    `toml:"description"`
	Steps       []string  `toml:"steps"`
	Conditions  []string  `toml:"conditions"`
	Expires     time.Time `toml:"expires"`
}

// DefaultPrograms returns the built-in programs: general, grocery-voucher
// and max-hops.
func DefaultPrograms() *Programs {
	p, err := LoadPrograms(defaultPrograms)
	if err != nil {
		panic("bank: built-in programs.toml: " + err.Error()) // a test covers it
	}
	return p
}

// LoadPrograms parses and checks a TOML program configuration. Everything
// a payment would trip over is refused here, naming the program: an
// unknown key or step, a condition that does not compile, reads an
// unknown variable, is not boolean or is over the limits (with its
// position), and a missing general program.
func LoadPrograms(data []byte) (*Programs, error) {
	var f programFile
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPrograms, err)
	}
	if keys := md.Undecoded(); len(keys) > 0 {
		return nil, fmt.Errorf("%w: unknown key %q", ErrPrograms, keys[0].String())
	}
	if _, ok := f.Programs[otp.GeneralProgramName]; !ok {
		return nil, fmt.Errorf("%w: no %q program (withdrawals that name no program get it)", ErrPrograms, otp.GeneralProgramName)
	}
	ps := &Programs{byName: make(map[string]ProgramDef, len(f.Programs))}
	for name, spec := range f.Programs {
		def, err := spec.program(name)
		if err != nil {
			return nil, fmt.Errorf("%w: program %q: %w", ErrPrograms, name, err)
		}
		ps.byName[name] = def
	}
	return ps, nil
}

func (s programSpec) program(name string) (ProgramDef, error) {
	if !validProgramName(name) {
		return ProgramDef{}, fmt.Errorf("name: want 1 to %d of a-z, 0-9 and '-'", maxProgramName)
	}
	steps, err := otp.Steps(s.Steps...)
	if err != nil {
		return ProgramDef{}, err
	}
	def := ProgramDef{
		Program:     otp.Program{Name: name, Steps: steps, Conditions: s.Conditions},
		Description: s.Description,
		Expires:     s.Expires.UTC(),
	}
	return def, def.Validate()
}

func validProgramName(s string) bool {
	return len(s) > 0 && len(s) <= maxProgramName && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-')
	})
}

// Get returns the program called name; "" is general.
func (p *Programs) Get(name string) (ProgramDef, bool) {
	if name == "" {
		name = otp.GeneralProgramName
	}
	d, ok := p.byName[name]
	return d, ok
}

// Names returns the program names, sorted.
func (p *Programs) Names() []string {
	names := make([]string, 0, len(p.byName))
	for n := range p.byName {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// program returns the coin program a withdrawal's coin key is of, if the
// bank still runs it at now.
func (b *Bank) program(name string, now time.Time) (ProgramDef, error) {
	def, ok := b.cfg.Programs.Get(name)
	if !ok {
		return ProgramDef{}, api.Errorf(http.StatusBadRequest, api.CodeUnknownProgram,
			"no coin program %q; this bank has %s", name, strings.Join(b.cfg.Programs.Names(), ", "))
	}
	if !def.Expires.IsZero() && !def.Expires.After(now) {
		return ProgramDef{}, api.Errorf(http.StatusBadRequest, api.CodeUnknownProgram,
			"coin program %q ended at %s", def.Name, def.Expires.Format(time.RFC3339))
	}
	return def, nil
}

// Programs returns the bank's coin programs.
func (b *Bank) Programs() *Programs { return b.cfg.Programs }
