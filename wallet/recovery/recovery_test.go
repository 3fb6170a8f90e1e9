package recovery

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/tyler-smith/go-bip39"

	"github.com/otpcash/otpcash/bank/api"
)

func TestPhraseRoundTrip(t *testing.T) {
	p, err := NewPhrase()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(strings.Fields(p.String())); n != Words {
		t.Fatalf("a new phrase has %d words, want %d", n, Words)
	}
	// As a person would type it back: other case, other spacing.
	typed := "  " + strings.ToUpper(strings.ReplaceAll(p.String(), " ", " \n\t"))
	q, err := ParsePhrase(typed)
	if err != nil {
		t.Fatal(err)
	}
	if q != p {
		t.Fatalf("parsed %q, want %q", q, p)
	}
	kp, _ := p.Derive()
	kq, _ := q.Derive()
	if kp.ID != kq.ID || kp.Backup != kq.Backup || !kp.Recovery.Equal(kq.Recovery) || !kp.BankBackup.Equal(kq.BankBackup) {
		t.Fatal("the typed phrase derives other keys")
	}
	other, _ := NewPhrase()
	ko, _ := other.Derive()
	if ko.ID == kp.ID || ko.Backup == kp.Backup || ko.Recovery.Equal(kp.Recovery) || ko.BankBackup.Equal(kp.BankBackup) {
		t.Fatal("two fresh phrases derive a common key")
	}
}

func TestParsePhraseRefuses(t *testing.T) {
	good := strings.Repeat("abandon ", 23) + "art"
	for _, tc := range []struct{ name, phrase string }{
		{"wrong checksum", strings.Repeat("abandon ", 24)},
		{"word swapped", strings.Repeat("abandon ", 22) + "art abandon"},
		{"not on the list", strings.Repeat("abandon ", 23) + "arts"},
		{"12 words", strings.Repeat("abandon ", 11) + "about"},
		{"25 words", good + " art"},
		{"empty", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParsePhrase(tc.phrase); !errors.Is(err, ErrPhrase) {
				t.Fatalf("ParsePhrase(%q) = %v, want ErrPhrase", tc.phrase, err)
			}
		})
	}
	if _, err := ParsePhrase(good); err != nil {
		t.Fatalf("the valid phrase is refused: %v", err)
	}
	if _, err := (Phrase{}).Derive(); !errors.Is(err, ErrPhrase) {
		t.Fatalf("the zero phrase derives keys: %v", err)
	}
}

// TestDeriveVectors checks the derivation against vectors computed
// independently (Python's hashlib and hmac; see the file's comment).
func TestDeriveVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/derive.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Vectors []struct {
			Phrase, Seed, WalletID, RecoverySeed, BackupKey, BankBackupSeed, BankBackupID string
		}
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range f.Vectors {
		p, err := ParsePhrase(v.Phrase)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(bip39.NewSeed(p.String(), "")); got != v.Seed {
			t.Errorf("%.20s: seed %s, want %s", v.Phrase, got, v.Seed)
		}
		k, err := p.Derive()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ name, got, want string }{
			{"wallet id", hex.EncodeToString(k.ID[:]), v.WalletID},
			{"recovery seed", hex.EncodeToString(k.Recovery.Seed()), v.RecoverySeed},
			{"backup key", hex.EncodeToString(k.Backup[:]), v.BackupKey},
			{"bank backup seed", hex.EncodeToString(k.BankBackup.Seed()), v.BankBackupSeed},
			{"bank backup id", api.BackupID(k.BankBackup.Public().(ed25519.PublicKey)), v.BankBackupID},
		} {
			if c.got != c.want {
				t.Errorf("%.20s: %s %s, want %s", v.Phrase, c.name, c.got, c.want)
			}
		}
	}
}
