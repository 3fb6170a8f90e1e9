// Package showable is the one rule for text that comes from someone else
// and is shown to a person: a peer's memo or error message, a receiver's
// announced name. Such text must show, not act: it may not rewrite the
// screen or log line it is printed on.
package showable

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Check reports the first thing in s that would act rather than show:
// invalid UTF-8, or a control character (C0, DEL, C1: escape sequences,
// carriage returns), a bidirectional control such as U+202E, which
// reverses the text after it, or a line or paragraph separator.
func Check(s string) error {
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			return fmt.Errorf("invalid UTF-8 at byte %d", i)
		case unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || unicode.In(r, unicode.Zl, unicode.Zp):
			return fmt.Errorf("character %U at byte %d is not allowed", r, i)
		}
	}
	return nil
}
