package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/otpcash/otpcash/vault"
)

func newTPMCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tpm",
		Short: "Set up the TPM 2.0 that TPM wallets are sealed to",
	}
	cmd.AddCommand(tpmSetupCmd())
	return cmd
}

func tpmSetupCmd() *cobra.Command {
	var (
		dev, authFile string
		p             = vault.RecommendedDA
	)
	cmd := &cobra.Command{
		Use:   "setup [--tpm DEV]",
		Short: "Set the TPM's dictionary-attack parameters, which bound PIN guessing on TPM wallets",
		Long: `Set the TPM's dictionary-attack parameters (TPM2_DictionaryAttackParameters)
and print them as the TPM reports them. A TPM wallet's PIN is checked by the
TPM, and these numbers bound how fast anyone holding the machine can guess
it: by default 10 wrong tries, then one every 10 minutes, and a day's wait
after a wrong lockout authorization (docs/SECURITY.md). They are the TPM
owner's and apply to everything on the TPM, so otpcash never sets them by
itself.

The lockout hierarchy's authorization comes from --lockout-auth-file, or
OTPCASH_TPM_LOCKOUT_AUTH, or is empty (a TPM nobody took ownership of).
The TPM is --tpm, or OTPCASH_TPM, or /dev/tpmrm0.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dev == "" {
				dev = os.Getenv("OTPCASH_TPM")
			}
			auth := []byte(os.Getenv("OTPCASH_TPM_LOCKOUT_AUTH"))
			if authFile != "" {
				b, err := os.ReadFile(authFile)
				if err != nil {
					return fmt.Errorf("tpm setup: %w", err)
				}
				auth = []byte(strings.TrimRight(string(b), "\r\n"))
			}
			if err := vault.SetDictionaryAttack(cmd.Context(), dev, auth, p); err != nil {
				return fmt.Errorf("tpm setup: %w", err)
			}
			got, err := vault.DictionaryAttack(cmd.Context(), dev)
			if err != nil {
				return fmt.Errorf("tpm setup: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "max tries %d, recovery %s, lockout recovery %s\n", got.MaxTries, got.Recovery, got.LockoutRecovery)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dev, "tpm", "", "TPM device, or swtpm:HOST:PORT (default: OTPCASH_TPM, or "+vault.DefaultTPM+")")
	f.StringVar(&authFile, "lockout-auth-file", "", "file holding the lockout hierarchy's authorization (default: OTPCASH_TPM_LOCKOUT_AUTH, or empty)")
	f.Uint32Var(&p.MaxTries, "max-tries", p.MaxTries, "wrong authorizations before the TPM locks out")
	f.DurationVar(&p.Recovery, "recovery", p.Recovery, "time after which the TPM forgets one wrong authorization, whole seconds")
	f.DurationVar(&p.LockoutRecovery, "lockout-recovery", p.LockoutRecovery, "wait after a wrong lockout authorization, whole seconds (0: until the TPM restarts)")
	return cmd
}
