package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/otpcash/otpcash/amount"
	"github.com/otpcash/otpcash/internal/paycode"
	"github.com/otpcash/otpcash/wallet"
)

// codeFlags say where a command writes the code it makes: the text on
// standard output (and to --out), QR codes on standard error (--qr) or as
// PNG files (--qr-png), so that standard output stays the text alone.
type codeFlags struct {
	out, png string
	qr       bool
}

func (c *codeFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.out, "out", "", "also write the code's text to this file")
	cmd.Flags().BoolVar(&c.qr, "qr", false, "print the code as QR codes on standard error (frames when it needs more than one)")
	cmd.Flags().StringVar(&c.png, "qr-png", "", "write the code as PNG QR codes: FILE, or FILE-1of3.png... when it needs frames")
}

// emit writes the code text as the flags ask.
func (c *codeFlags) emit(cmd *cobra.Command, text string) error {
	fmt.Fprintln(cmd.OutOrStdout(), text)
	if c.out != "" {
		if err := os.WriteFile(c.out, []byte(text+"\n"), 0o600); err != nil {
			return err
		}
	}
	if !c.qr && c.png == "" {
		return nil
	}
	_, err := writeQR(cmd.ErrOrStderr(), text, c.qr, c.png)
	return err
}

// writeQR renders text as QR codes, one per frame: on w when term, and as
// PNG files named after png when png is not empty. It returns the files.
func writeQR(w io.Writer, text string, term bool, png string) ([]string, error) {
	frames := paycode.Frames(text, paycode.FrameSize)
	var files []string
	for i, f := range frames {
		q, err := paycode.QR(f)
		if err != nil {
			return nil, err
		}
		if term {
			if len(frames) > 1 {
				fmt.Fprintf(w, "frame %d of %d:\n", i+1, len(frames))
			}
			fmt.Fprint(w, q.ToSmallString(false))
		}
		if png != "" {
			name := png
			if len(frames) > 1 {
				ext := filepath.Ext(png)
				name = fmt.Sprintf("%s-%dof%d%s", strings.TrimSuffix(png, ext), i+1, len(frames), ext)
			}
			if err := q.WriteFile(-4, name); err != nil {
				return nil, err
			}
			files = append(files, name)
		}
	}
	return files, nil
}

// readCode reads a code given as its text (or URI), a file holding it,
// or "-" for standard input; a file or input of several lines is a set of
// QR frames, in any order.
func readCode(cmd *cobra.Command, arg string) (string, error) {
	var raw []byte
	switch {
	case arg == "-":
		b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), paycode.MaxText+1))
		if err != nil {
			return "", err
		}
		raw = b
	case strings.HasPrefix(strings.ToUpper(arg), "OTPCASH"):
		raw = []byte(arg)
	default:
		f, err := os.Open(arg)
		if err != nil {
			return "", err
		}
		defer f.Close()
		if raw, err = io.ReadAll(io.LimitReader(f, paycode.MaxText+1)); err != nil {
			return "", err
		}
	}
	if len(raw) > paycode.MaxText {
		return "", fmt.Errorf("%s: more than %d bytes", arg, paycode.MaxText)
	}
	return paycode.Join(strings.Split(strings.TrimSpace(string(raw)), "\n"))
}

func walletRequestCmd() *cobra.Command {
	var f walletFlags
	var c codeFlags
	var memo string
	var expires time.Duration
	var keys int
	cmd := &cobra.Command{
		Use:   "request AMOUNT --wallet DIR [--memo TEXT] [--expires 15m] [--keys N]",
		Short: "Make a payment request to show a payer: paid with a token, no connection",
		Long: `request promises some of this wallet's exchange keys to a new payment request
and prints it (OTPCASHREQ1...). The payer pays it with 'wallet pay --request',
which prints a token; 'wallet receive --token' takes the token and prints the
receipt to hand back. A request is paid exactly: there is no change without a
live session.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			value, err := amount.Parse(args[0])
			if err != nil {
				return err
			}
			return f.with(cmd, func(w *wallet.Wallet) error {
				r, err := w.Request(cmd.Context(), value, memo, expires, keys, wallet.WithProgram(f.program))
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "request %s: %s %s of program %q, %d keys, payable until %s\n",
					r.ID, amount.Format(r.Amount), r.Currency, r.Program, len(r.Keys), r.Expires.Format(time.RFC3339))
				return c.emit(cmd, r.Text)
			})
		},
	}
	f.register(cmd)
	c.register(cmd)
	cmd.Flags().StringVar(&memo, "memo", "", "what the payment is for, shown to the payer")
	cmd.Flags().DurationVar(&expires, "expires", wallet.DefaultRequestTTL, "how long the request can be paid")
	cmd.Flags().IntVar(&keys, "keys", 0, "exchange keys in the request: the most coins it can be paid in (default: enough for most wallets, at least 12); each adds about 500 characters")
	f.registerProgram(cmd, "the request takes")
	return cmd
}

// payRequest is 'wallet pay --request': it prints the token.
func payRequest(cmd *cobra.Command, w *wallet.Wallet, arg string, c *codeFlags) error {
	text, err := readCode(cmd, arg)
	if err != nil {
		return err
	}
	tp, err := w.PayRequest(cmd.Context(), text)
	if err != nil {
		return err
	}
	r := tp.Request
	payee := "an anonymous payee"
	if len(r.Keys) > 0 && len(r.Keys[0].Attrs) > 0 {
		payee = fmt.Sprintf("%v (certified by %s)", r.Keys[0].Attrs, r.Keys[0].Issuer)
	}
	again := ""
	if tp.Again {
		again = " (sealed earlier; the same token again)"
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "paid request %s: %s %s to %s for %q in %d coins%s; they stay pending-out until you import the receipt\n",
		r.ID, amount.Format(r.Amount), r.Currency, payee, r.Memo, tp.Coins, again)
	return c.emit(cmd, tp.Token)
}

// receiveToken is 'wallet receive --token': it prints the receipt.
func receiveToken(cmd *cobra.Command, w *wallet.Wallet, arg string, c *codeFlags) error {
	text, err := readCode(cmd, arg)
	if err != nil {
		return err
	}
	res, err := w.ReceiveToken(cmd.Context(), text)
	if err != nil {
		return err
	}
	again := ""
	if res.Again {
		again = " (imported before: nothing changed; the same receipt again)"
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "received %s %s in %d coins for request %s%s\n",
		amount.Format(res.Amount), w.Currency(), res.Coins, res.RequestID, again)
	return c.emit(cmd, res.Receipt)
}

func walletReceiptCmd() *cobra.Command {
	var f walletFlags
	cmd := &cobra.Command{
		Use:   "receipt FILE|TEXT|- --wallet DIR",
		Short: "Import the payee's receipt for a token you paid: the coins become spent",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			text, err := readCode(cmd, args[0])
			if err != nil {
				return err
			}
			return f.with(cmd, func(w *wallet.Wallet) error {
				res, err := w.ImportReceipt(cmd.Context(), text)
				if err != nil {
					return err
				}
				if f.json {
					return printJSON(cmd, res)
				}
				again := ""
				if res.Again {
					again = " (imported before: nothing changed)"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "receipt for request %s: %s %s in %d coins spent%s\n",
					res.RequestID, amount.Format(res.Amount), w.Currency(), res.Coins, again)
				return nil
			})
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&f.json, "json", false, "print the result as JSON")
	return cmd
}

// errPayArgs is 'wallet pay' with neither a payee address and amount nor
// a request.
var errPayArgs = errors.New("pay: give AMOUNT and --to ADDR for a live session, or --request for a payment request")
