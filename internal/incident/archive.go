package incident

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mail2archer/mail2archer/internal/email"
	"github.com/mail2archer/mail2archer/internal/zipcrypto"
)

// maxKeyInName bounds the part of the archive's name taken from the key.
const maxKeyInName = 120

// ArchiveName is the name of the archive that holds a record's
// attachments: attachments-<key>.zip, the key reduced to letters, digits,
// ".", "-", "_" and "@" (anything else becomes "_") and cut to 120 bytes.
func ArchiveName(key string) string {
	var b strings.Builder
	for _, r := range key {
		if b.Len() >= maxKeyInName {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_', r == '@':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return "attachments-" + b.String() + ".zip"
}

// openArchive returns an Open function for the archive of atts: each call
// starts a goroutine that writes the archive into a pipe as the caller
// reads it. The goroutine ends when the archive is written, or when the
// caller closes the reader, whichever comes first.
func openArchive(atts []email.Attachment, modified time.Time) Opener {
	return func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() {
			pw.CloseWithError(writeArchive(pw, atts, modified))
		}()
		return pr, nil
	}
}

// writeArchive writes atts into an encrypted ZIP archive, each under its
// sanitized name, made unique with " (2)", " (3)"… before the extension.
func writeArchive(w io.Writer, atts []email.Attachment, modified time.Time) error {
	zw := zipcrypto.NewWriter(w, ArchivePassword)
	seen := make(map[string]bool, len(atts))
	for _, a := range atts {
		name := uniqueName(fileName(a.Name, "attachment.bin"), seen)
		f, err := zw.Create(name, modified)
		if err != nil {
			return fmt.Errorf("archive attachment %q: %w", name, err)
		}
		if _, err := f.Write(a.Data); err != nil {
			return fmt.Errorf("archive attachment %q: %w", name, err)
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("archive attachments: %w", err)
	}
	return nil
}

// uniqueName returns name, or name with " (n)" before its extension when
// seen holds it already (case-insensitively, as Windows compares names),
// and records it.
func uniqueName(name string, seen map[string]bool) string {
	ext := ""
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		ext = name[i:]
	}
	base := strings.TrimSuffix(name, ext)
	candidate := name
	for n := 2; seen[strings.ToLower(candidate)]; n++ {
		candidate = fmt.Sprintf("%s (%d)%s", base, n, ext)
	}
	seen[strings.ToLower(candidate)] = true
	return candidate
}
