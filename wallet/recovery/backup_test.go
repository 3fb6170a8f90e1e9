package recovery

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"testing"
	"time"

	"github.com/otpcash/otpcash/otp"
	"github.com/otpcash/otpcash/vault"
)

var update = flag.Bool("update", false, "rewrite the golden backup")

// goldenBackup is the document in testdata/backup-v1.bin, sealed for the
// first phrase of testdata/derive.json with the nonce goldenNonce.
func goldenBackup(t *testing.T) (*Keys, *Backup, []byte) {
	t.Helper()
	p, err := ParsePhrase("abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon art")
	if err != nil {
		t.Fatal(err)
	}
	k, err := p.Derive()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("../../otp/testdata/sandbox.json")
	if err != nil {
		t.Fatal(err)
	}
	sb, err := otp.ParseSandbox(raw)
	if err != nil {
		t.Fatal(err)
	}
	b := &Backup{
		Version: BackupVersion,
		Created: time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC),
		Coins:   []Coin{{Sandbox: *sb, Authorization: "authorisation-of-the-holder-key"}},
		History: []vault.Event{{Time: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC), Kind: "withdrawn", Amount: 500, Currency: "EUR"}},
	}
	return &k, b, bytes.Repeat([]byte{7}, 24)
}

func TestBackupGolden(t *testing.T) {
	k, b, nonce := goldenBackup(t)
	sealed, err := sealBackup(k.ID, &k.Backup, b, nonce)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("testdata/backup-v1.bin", sealed, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile("testdata/backup-v1.bin")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sealed, golden) {
		t.Fatal("sealing the golden document gives other bytes than testdata/backup-v1.bin: the format changed")
	}
	got, err := OpenBackup(k, golden)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Coins) != 1 || got.Coins[0].Sandbox.Coin.Checksum != b.Coins[0].Sandbox.Coin.Checksum ||
		got.Coins[0].Authorization != b.Coins[0].Authorization || !got.Created.Equal(b.Created) ||
		len(got.History) != 1 || got.History[0] != b.History[0] {
		t.Fatalf("golden backup reads as %+v", got)
	}
}

func TestOpenBackupRefuses(t *testing.T) {
	k, b, _ := goldenBackup(t)
	good, err := SealBackup(k.ID, &k.Backup, b)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewPhrase()
	ko, _ := other.Derive()
	ofOther, _ := SealBackup(ko.ID, &ko.Backup, b)
	// Another wallet's key under this wallet's id: fails authentication.
	foreignKey, _ := SealBackup(k.ID, &ko.Backup, b)
	relabelled := bytes.Clone(ofOther)
	copy(relabelled[len(backupMagic):], k.ID[:])
	v2 := *b
	v2.Version = 2
	newer, _ := SealBackup(k.ID, &k.Backup, &v2)
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrBackupFormat},
		{"short header", good[:backupHeader-1], ErrBackupFormat},
		{"wrong magic", append([]byte("otpcash/v2/backup\x00"), good[len(backupMagic):]...), ErrBackupFormat},
		{"another wallet's backup", ofOther, ErrOtherWallet},
		{"another wallet's backup relabelled", relabelled, ErrBackupAuth},
		{"sealed under another key", foreignKey, ErrBackupAuth},
		{"truncated", good[:len(good)-1], ErrBackupAuth},
		{"a later version", newer, ErrBackupFormat},
		{"too large", make([]byte, MaxBackup+1), ErrBackupFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := OpenBackup(k, tc.data); !errors.Is(err, tc.want) {
				t.Fatalf("OpenBackup = %v, want %v", err, tc.want)
			}
		})
	}
	// Every single flipped bit anywhere is refused.
	for i := range good {
		bad := bytes.Clone(good)
		bad[i] ^= 1
		if _, err := OpenBackup(k, bad); err == nil {
			t.Fatalf("byte %d flipped: accepted", i)
		}
	}
}

func FuzzOpenBackup(f *testing.F) {
	k, b, nonce := goldenBackup(&testing.T{})
	golden, _ := sealBackup(k.ID, &k.Backup, b, nonce)
	f.Add(golden)
	f.Add(golden[:backupHeader])
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := OpenBackup(k, data)
		if err == nil && got.Version != BackupVersion {
			t.Fatalf("accepted version %d", got.Version)
		}
		if err == nil && !bytes.Equal(data[:backupHeader], golden[:backupHeader]) {
			// Without the key, no other header can authenticate.
			t.Fatalf("accepted a backup with another header")
		}
	})
}
