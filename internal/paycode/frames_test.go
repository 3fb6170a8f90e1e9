package paycode

import (
	"bytes"
	"errors"
	"image/png"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/makiuchi-d/gozxing"
	zxqr "github.com/makiuchi-d/gozxing/qrcode"
)

// scan renders payload as a PNG QR code and reads it back with a QR
// decoder, as a phone's camera would.
func scan(t *testing.T, payload string) string {
	t.Helper()
	q, err := QR(payload)
	if err != nil {
		t.Fatal(err)
	}
	b, err := q.PNG(-3)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := zxqr.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("decode a QR code of %d characters: %v", len(payload), err)
	}
	return res.GetText()
}

// TestQRRoundTrip: a token too large for one code goes through real QR
// codes frame by frame, is read back in another order, reassembled and
// parsed to the same token; a one-frame receipt is the text itself.
func TestQRRoundTrip(t *testing.T) {
	f := newFixture(t, 5)
	forms := f.forms(t)
	frames := Frames(forms[KindToken], FrameSize)
	if len(frames) < 2 {
		t.Fatalf("a 5-coin token in %d frame", len(frames))
	}
	var read []string
	for _, i := range rand.Perm(len(frames)) {
		read = append(read, scan(t, frames[i]))
	}
	read = append(read, read[0]) // a frame scanned twice
	text, err := Join(read)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ParseToken(text)
	if err != nil || !reflect.DeepEqual(tok, &f.tok) {
		t.Fatalf("token after QR: %v", err)
	}

	one := Frames(forms[KindReceipt], FrameSize)
	if len(one) != 1 || one[0] != forms[KindReceipt] {
		t.Fatalf("a receipt of %d characters in %d frames", len(forms[KindReceipt]), len(one))
	}
	text, err = Join([]string{scan(t, one[0])})
	if err != nil || text != forms[KindReceipt] {
		t.Fatalf("receipt after QR: %v", err)
	}
}

// TestJoinRefuses: a mixed, incomplete or damaged set of frames.
func TestJoinRefuses(t *testing.T) {
	a := Frames(newFixture(t, 3).forms(t)[KindToken], 1000)
	b := Frames(newFixture(t, 4).forms(t)[KindToken], 1000)
	damaged := append([]string(nil), a...)
	damaged[1] = damaged[1][:len(damaged[1])-1] + "Q"
	if strings.HasSuffix(a[1], "Q") {
		damaged[1] = damaged[1][:len(damaged[1])-1] + "R"
	}
	conflicting := append(append([]string(nil), a...), damaged[1])
	for _, tc := range []struct {
		name   string
		frames []string
	}{
		{"mixed", append(append([]string(nil), a[:1]...), b[1:]...)},
		{"missing", a[1:]},
		{"damaged", damaged},
		{"two different frames in one place", conflicting},
		{"bad header", []string{framePrefix + "0/2/00000000/AB", framePrefix + "1/2/00000000/CD"}},
		{"huge total", []string{framePrefix + "1/999999999/00000000/AB"}},
		{"none", []string{"", " "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Join(tc.frames); !errors.Is(err, ErrFrames) {
				t.Fatalf("%v, want ErrFrames", err)
			}
		})
	}
	if text, err := Join(a); err != nil || len(text) == 0 {
		t.Fatalf("the whole set: %v", err)
	}
}

// FuzzJoin: any set of lines.
func FuzzJoin(f *testing.F) {
	frames := Frames(newFixture(f, 3).forms(f)[KindToken], 1000)
	f.Add(strings.Join(frames, "\n"))
	f.Add(framePrefix + "1/2/00000000/AB")
	f.Fuzz(func(t *testing.T, in string) {
		// No panic, and nothing joined that the frames did not carry.
		text, err := Join(strings.Split(in, "\n"))
		if err == nil && len(text) > len(in) {
			t.Fatalf("joined %d characters from %d", len(text), len(in))
		}
	})
}
