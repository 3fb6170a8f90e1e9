package paycode

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	qrcode "github.com/skip2/go-qrcode"
)

// ErrFrames refuses a set of QR frames that is incomplete, mixed (frames
// of two codes) or damaged.
var ErrFrames = errors.New("bad set of QR frames")

// FrameSize is the most characters of a text form one QR code carries: a
// version 27 code at error correction level M, which a phone reads off a
// screen; a longer text is split into frames.
const FrameSize = 1200

// framePrefix starts a frame: OTPCASHFRM1/index/total/checksum/chunk,
// index from 1, the checksum the first 4 bytes of the SHA-256 of the whole
// text, in hex. Every character is in the QR alphanumeric set.
const framePrefix = "OTPCASHFRM1/"

// maxFrames bounds a set, so that a forged header cannot make a reader
// wait for, or allocate, millions of frames.
const maxFrames = 1 + MaxText/FrameSize

// Frames splits a text form into QR payloads of at most size characters of
// the text each: the text itself when it fits in one, else frames with a
// header.
func Frames(text string, size int) []string {
	if len(text) <= size {
		return []string{text}
	}
	n := (len(text) + size - 1) / size
	check := frameSum(text)
	out := make([]string, n)
	for i := range n {
		chunk := text[i*size : min((i+1)*size, len(text))]
		out[i] = fmt.Sprintf("%s%d/%d/%s/%s", framePrefix, i+1, n, check, chunk)
	}
	return out
}

func frameSum(text string) string {
	h := sha256.Sum256([]byte(text))
	return strings.ToUpper(hex.EncodeToString(h[:4]))
}

// Join reassembles a text form from the payloads read off its QR codes, in
// any order, a frame read twice being counted once. A single payload that
// is not a frame is the text itself. A frame of another set, a missing
// frame, two different frames in one place or a whole whose checksum
// differs from the frames' is refused (ErrFrames).
func Join(payloads []string) (string, error) {
	if len(payloads) == 1 && !strings.HasPrefix(strings.ToUpper(strings.TrimSpace(payloads[0])), framePrefix) {
		return strings.TrimSpace(payloads[0]), nil
	}
	var (
		total int
		check string
		parts map[int]string
	)
	for _, p := range payloads {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		i, n, c, chunk, err := parseFrame(p)
		if err != nil {
			return "", err
		}
		if parts == nil {
			total, check, parts = n, c, make(map[int]string, n)
		}
		if n != total || c != check {
			return "", fmt.Errorf("%w: frames of two different codes (%d frames, checksum %s, and %d, %s)", ErrFrames, total, check, n, c)
		}
		if old, ok := parts[i]; ok && old != chunk {
			return "", fmt.Errorf("%w: two different frames %d", ErrFrames, i)
		}
		parts[i] = chunk
	}
	if parts == nil {
		return "", fmt.Errorf("%w: no frames", ErrFrames)
	}
	var b strings.Builder
	for i := 1; i <= total; i++ {
		chunk, ok := parts[i]
		if !ok {
			return "", fmt.Errorf("%w: frame %d of %d is missing", ErrFrames, i, total)
		}
		b.WriteString(chunk)
	}
	if frameSum(b.String()) != check {
		return "", fmt.Errorf("%w: the frames do not make the code they announce (checksum)", ErrFrames)
	}
	return b.String(), nil
}

func parseFrame(p string) (index, total int, check, chunk string, err error) {
	f := strings.SplitN(strings.ToUpper(p), "/", 5)
	if len(f) != 5 || f[0]+"/" != framePrefix {
		return 0, 0, "", "", fmt.Errorf("%w: not a frame", ErrFrames)
	}
	total, terr := strconv.Atoi(f[2])
	index, ierr := strconv.Atoi(f[1])
	if terr != nil || ierr != nil || total < 2 || total > maxFrames || index < 1 || index > total || len(f[3]) != 8 || f[4] == "" {
		return 0, 0, "", "", fmt.Errorf("%w: bad frame header %q", ErrFrames, strings.Join(f[:4], "/"))
	}
	return index, total, f[3], f[4], nil
}

// QR returns the QR code of one payload, at error correction level M.
func QR(payload string) (*qrcode.QRCode, error) {
	q, err := qrcode.New(payload, qrcode.Medium)
	if err != nil {
		return nil, fmt.Errorf("QR code of %d characters: %w", len(payload), err)
	}
	return q, nil
}
